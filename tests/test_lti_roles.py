"""Role parsing: the spellings Canvas, Moodle (launch and NRPS roster) and the LTI 1.3 certification
cases send, and which of them open the instructor pages."""

from __future__ import annotations

import pytest

from kdgrade.lti.roles import role_flags

M = "http://purl.imsglobal.org/vocab/lis/v2/membership"
INST = "http://purl.imsglobal.org/vocab/lis/v2/institution/person"
SYS = "http://purl.imsglobal.org/vocab/lis/v2/system/person"
LEARNER, INSTRUCTOR, NEITHER = (True, False), (False, True), (False, False)

CASES = {
    # Canvas launches
    "Canvas student": ([f"{INST}#Student", f"{M}#Learner", f"{SYS}#User"], LEARNER),
    "Canvas teacher": ([f"{INST}#Instructor", f"{M}#Instructor", f"{SYS}#User"], INSTRUCTOR),
    "Canvas TA": ([f"{INST}#Student", f"{M}/Instructor#TeachingAssistant", f"{SYS}#User"], INSTRUCTOR),
    "Canvas designer": ([f"{M}#ContentDeveloper", f"{SYS}#User"], NEITHER),
    "Canvas observer": ([f"{M}#Mentor", f"{SYS}#User"], NEITHER),
    "Canvas account admin, not enrolled": ([f"{INST}#Administrator", f"{SYS}#SysAdmin", f"{SYS}#User"], LEARNER),
    "Canvas test student": ([f"{M}#Learner", f"{SYS}#User"], LEARNER),
    # Moodle launches and its NRPS roster
    "Moodle student": ([f"{M}#Learner"], LEARNER),
    "Moodle teacher": ([f"{M}#Instructor"], INSTRUCTOR),
    "Moodle site admin teaching": ([f"{INST}#Administrator", f"{M}#Instructor", f"{SYS}#Administrator"],
                                   INSTRUCTOR),
    "Moodle NRPS learner": (["Learner"], LEARNER),
    "Moodle NRPS instructor": (["Instructor"], INSTRUCTOR),
    # certification cases and others
    "short names, both": (["Learner", "Instructor"], INSTRUCTOR),
    "no role": ([""], LEARNER),
    "empty list": ([], LEARNER),
    "unknown role only": ([f"{M}#Unknown", "http://example.com/roles#Wizard"], LEARNER),
    "learner and unknown": ([f"{M}#Learner", "http://purl.imsglobal.org/vocab/lis/v2/unknown/unknown#Unknown"],
                            LEARNER),
    "instructor and unknown": ([f"{M}#Instructor", "Wizard"], INSTRUCTOR),
    "course administrator": ([f"{M}#Administrator"], INSTRUCTOR),
    "institution administrator alone": ([f"{INST}#Administrator"], LEARNER),
    "system administrator alone": ([f"{SYS}#Administrator"], LEARNER),
    "institution faculty alone": ([f"{INST}#Faculty"], LEARNER),
    "content developer": (["ContentDeveloper"], NEITHER),
    "grader sub-role": ([f"{M}/Instructor#Grader"], INSTRUCTOR),
    "guest instructor sub-role": ([f"{M}/Instructor#GuestInstructor"], INSTRUCTOR),
    "primary instructor sub-role": ([f"{M}/Instructor#PrimaryInstructor"], INSTRUCTOR),
    "learner beside a TA sub-role": ([f"{M}#Learner", f"{M}/Instructor#TeachingAssistant"], LEARNER),
    "learner beside a teacher sub-role": ([f"{M}#Learner", f"{M}/Instructor#Lecturer"], LEARNER),
    "learner, TA sub-role and full instructor": (
        [f"{M}#Learner", f"{M}/Instructor#TeachingAssistant", f"{M}#Instructor"], INSTRUCTOR),
    "learner sub-role": ([f"{M}/Learner#NonCreditLearner"], LEARNER),
    "LTI 1.1 URN instructor": (["urn:lti:role:ims/lis/Instructor"], INSTRUCTOR),
    "LTI 1.1 URN TA": (["urn:lti:role:ims/lis/TeachingAssistant"], INSTRUCTOR),
    "LTI 1.1 URN learner": (["urn:lti:role:ims/lis/Learner"], LEARNER),
    "LTI 1.1 institution URN admin": (["urn:lti:instrole:ims/lis/Administrator"], LEARNER),
}


@pytest.mark.parametrize("case", list(CASES))
def test_role_flags(case, settings):
    settings.KDGRADE_LTI_TA_INSTRUCTOR = True
    roles, expected = CASES[case]
    assert tuple(role_flags(roles)) == expected


@pytest.mark.parametrize("roles", [[f"{M}/Instructor#TeachingAssistant"], [f"{M}/Instructor#Grader"],
                                   ["TeachingAssistant"], [f"{M}/Instructor#GuestInstructor"]])
def test_teaching_assistants_are_learners_when_the_setting_says_so(roles, settings):
    settings.KDGRADE_LTI_TA_INSTRUCTOR = False
    assert tuple(role_flags(roles)) == (False, False)
    # A teacher's own sub-role and a full Instructor role are not affected by the setting.
    assert role_flags([f"{M}/Instructor#PrimaryInstructor"]).instructor
    assert role_flags([*roles, f"{M}#Instructor"]).instructor
