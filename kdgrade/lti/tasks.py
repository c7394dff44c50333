"""Celery tasks of the LTI app: thin wrappers that take ids and call the outbox service.

The roster (NRPS) is fetched when a teacher asks for it on the review page, inline, so the page shows
the result at once; there is no roster task."""

from __future__ import annotations

from celery import shared_task

from kdgrade.lti import outbox


@shared_task(name="kdgrade.lti.deliver_grades", ignore_result=True)
def deliver_grades(slot_id: int) -> str:
    """Post the newest pending score of one gradebook cell; schedule itself again when it must wait."""
    result = outbox.deliver_slot(slot_id)
    if result.outcome in ("waiting", "busy") and result.retry_in is not None:
        outbox.schedule(slot_id, countdown=max(0.05, result.retry_in))
    return result.outcome


@shared_task(name="kdgrade.lti.sweep_outbox", ignore_result=True)
def sweep_outbox() -> int:
    """Beat: queue every due grade post whose task was lost (broker hiccup, killed worker); drop old
    expired launch sessions."""
    from kdgrade.lti.sessions import purge_expired_sessions

    purge_expired_sessions()
    return outbox.sweep()


@shared_task(name="kdgrade.lti.purge_expired_data", ignore_result=True)
def purge_expired_data() -> dict:
    """Beat, daily: delete students' data older than KDGRADE_RETENTION_DAYS."""
    from kdgrade.lti.privacy import purge_expired

    return purge_expired()
