"""LTI roles: who is a learner and who an instructor in a course, from a launch or a roster (NRPS).

Platforms spell roles several ways: the full LIS context-role URIs (Canvas, Moodle launches), the
short names the LTI 1.3 spec still allows for context roles (Moodle's roster service sends
`"roles": ["Learner"]`), LTI 1.1 URNs, and context sub-roles (`membership/Instructor#TeachingAssistant`).
Only context (course) roles decide: institution and system roles (e.g. a site Administrator) give no
rights in a course by themselves.
"""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings

CONTEXT_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership"
LTI11_ROLE = "urn:lti:role:ims/lis/"
PRINCIPALS = frozenset({"Administrator", "ContentDeveloper", "Instructor", "Learner", "Manager", "Member",
                        "Mentor", "Officer"})
# Instructor sub-roles that are teaching assistants rather than the course's teachers.
ASSISTANT_SUBROLES = frozenset({"Grader", "GuestInstructor", "TeachingAssistant", "TeachingAssistantGroup",
                                "TeachingAssistantOffering", "TeachingAssistantSection",
                                "TeachingAssistantSectionAssociation", "TeachingAssistantTemplate"})


class RoleFlags(NamedTuple):
    learner: bool
    instructor: bool


def context_roles(roles: list[str]) -> set[tuple[str, str]]:
    """The (principal role, sub-role or "") pairs of the context roles in `roles`; other roles are dropped.

    `Instructor`, `membership#Instructor` and `urn:lti:role:ims/lis/Instructor` give ("Instructor", "");
    `membership/Instructor#TeachingAssistant` and `urn:lti:role:ims/lis/Instructor/TeachingAssistant`
    give ("Instructor", "TeachingAssistant"); a bare `TeachingAssistant` is LTI 1.1's short name of that sub-role.
    """
    out: set[tuple[str, str]] = set()
    for raw in roles:
        role = str(raw or "").strip()
        if role.startswith(CONTEXT_ROLE + "#"):
            principal, sub = role[len(CONTEXT_ROLE) + 1:], ""
        elif role.startswith(CONTEXT_ROLE + "/"):
            principal, _, sub = role[len(CONTEXT_ROLE) + 1:].partition("#")
        elif role.startswith(LTI11_ROLE):
            principal, _, sub = role[len(LTI11_ROLE):].partition("/")
        elif "/" not in role and ":" not in role and "#" not in role:
            principal, sub = role, ""
        else:
            continue  # institution, system or unknown vocabularies
        if principal in ASSISTANT_SUBROLES and not sub:  # LTI 1.1's short name of the sub-role
            principal, sub = "Instructor", principal
        if principal in PRINCIPALS:
            out.add((principal, sub))
    return out


def role_flags(roles: list[str], *, assistants_instruct: bool | None = None) -> RoleFlags:
    """(learner, instructor) of someone with `roles` in a course; never both.

    - a full Instructor or a course Administrator role: instructor;
    - an Instructor sub-role without a Learner role: a teacher's (PrimaryInstructor, Lecturer...) is
      instructor; a teaching assistant's (Grader, TeachingAssistant..., GuestInstructor) is instructor
      when KDGRADE_LTI_TA_INSTRUCTOR allows it (the default); beside a Learner role, a learner;
    - otherwise a Learner role, no context role at all, or only roles kdgrade does not know: learner
      (the least privilege; a launch without roles is a learner's);
    - only other context roles (ContentDeveloper, Mentor, Member, Manager, Officer): neither.
    """
    if assistants_instruct is None:
        assistants_instruct = bool(settings.KDGRADE_LTI_TA_INSTRUCTOR)
    pairs = context_roles(roles)
    principals = {p for p, sub in pairs if not sub}
    learner_role = any(p == "Learner" for p, _ in pairs)
    instructor = "Instructor" in principals or "Administrator" in principals
    if not instructor and not learner_role:
        subroles = {sub for p, sub in pairs if p == "Instructor" and sub}
        instructor = bool(subroles - ASSISTANT_SUBROLES) or bool(subroles and assistants_instruct)
    if instructor:
        return RoleFlags(learner=False, instructor=True)
    return RoleFlags(learner=learner_role or not pairs, instructor=False)
