"""A course with launch sessions and scored answers written straight to the database (no model, no
LMS): for the grading services, selectors and views, and the page-timing bench."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kdgrade.lti.models import Context, LaunchSession, LtiAssignment, LtiUser, Membership, Platform, ResourceLink
from kdgrade.lti.sessions import start_session
from scoring.models import Assignment, Item, RubricLevel, Score, Submission

ANSWERS = [
    "Metal conducts heat away from your hand faster than wood, so it feels colder.",
    "Metal is a conductor and wood is an insulator.",
    "The metal spoon is colder.",
    "Both are the same temperature but metal takes heat from the hand quickly.",
]


@dataclass
class Course:
    platform: Platform
    context: Context
    assignment: Assignment
    link: ResourceLink
    teacher: LaunchSession

    def learner(self, sub: str, name: str = "") -> LaunchSession:
        user, _ = LtiUser.objects.get_or_create(platform=self.platform, sub=sub, defaults={"name": name})
        Membership.objects.get_or_create(context=self.context, user=user, defaults={"is_learner": True})
        return start_session(platform=self.platform, context=self.context, user=user, resource_link=self.link)

    def answer(self, sub: str, text: str, model_score: int | None, *, flags: list[str] | None = None,
               confidence: float = 0.9, name: str = "") -> Score:
        """A learner's answer with the score a model would have given (None: it declined)."""
        self.learner(sub, name or sub.replace("-", " ").title())
        item = self.assignment.item
        sub_row = Submission.objects.create(item=item, assignment=self.assignment, learner_ref=sub, response=text,
                                            source=Submission.Source.LTI)
        probs = {str(lv): (0.8 if lv == model_score else 0.1) for lv in item.score_levels}
        return Score.objects.create(submission=sub_row, model_score=model_score, probabilities=probs,
                                    confidence=confidence if model_score is not None else None, flags=flags or [])


def make_course(n_answers: int = 0, *, release: str = "after_review", gradebook: bool = False) -> Course:
    platform = Platform.objects.create(name="Test LMS", issuer=f"https://lms-{secrets.token_hex(3)}.example",
                                       client_id="kdgrade", auth_url="https://lms.example/auth",
                                       token_url="https://lms.example/token", keyset_url="https://lms.example/jwks")
    context = Context.objects.create(platform=platform, context_id="course-1", title="Physics 7B")
    item = Item.objects.create(external_id=f"spoon-{secrets.token_hex(3)}", title="Heat and the spoon",
                               question="Why does the metal spoon feel colder?", score_min=0, score_max=2)
    for lv, label in enumerate(["Not yet", "Partly", "Complete"]):
        RubricLevel.objects.create(item=item, score=lv, label=label, descriptor=f"What a level-{lv} answer shows.")
    assignment = Assignment.objects.create(item=item, title="Spoon question", release=release)
    LtiAssignment.objects.create(assignment=assignment, context=context)
    link = ResourceLink.objects.create(
        context=context, resource_link_id="link-1", assignment=assignment,
        ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/score"] if gradebook else [],
        lineitem_url="https://lms.example/lineitems/1" if gradebook else "")
    teacher_user = LtiUser.objects.create(platform=platform, sub="teacher-1", name="Tess Teacher")
    Membership.objects.create(context=context, user=teacher_user, is_instructor=True)
    teacher = start_session(platform=platform, context=context, user=teacher_user, resource_link=link,
                            is_instructor=True)
    course = Course(platform, context, assignment, link, teacher)
    for i in range(n_answers):
        flagged = i % 10 == 0
        course.answer(f"student-{i}", f"{ANSWERS[i % len(ANSWERS)]} (answer {i})", None if i % 25 == 0 else i % 3,
                      flags=["gibberish"] if flagged else [], confidence=0.5 + (i % 50) / 100, name=f"Student {i:03d}")
    return course
