"""Commands on assignments that are not about scoring an answer."""

from __future__ import annotations

from scoring.models import Assignment


def copy_assignment(source: Assignment) -> Assignment:
    """A new assignment with the item and settings of `source` (a course copy in the LMS gets its own,
    so the copy's answers, overrides and release mode never mix with the original course's)."""
    return Assignment.objects.create(item=source.item, title=source.title, release=source.release,
                                     show_feedback=source.show_feedback)
