"""Smoke check of a running kdgrade from a development LMS (the lti1p3platform library, as in the tests):
the LMS registers (Dynamic Registration with a URL from `manage.py lti_registration_url`, or, where
kdgrade runs in production mode and so accepts Dynamic Registration only from an https LMS, by hand
beforehand with the `lti_add_platform` command this script prints), a teacher adds an item with Deep
Linking, a student answers, and the grade must reach the LMS gradebook (released by the teacher on the
review page when the model leaves it for review).  Needs the dev requirements; talks to kdgrade over
HTTP only.

    .venv/bin/python scripts/lms_smoke.py --registration-url URL
    .venv/bin/python scripts/lms_smoke.py --kdgrade URL --lms-port 8766     # registered by hand
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")

ANSWER = ("Metal is a better conductor of heat than wood, so it takes heat away from my hand faster. They are "
          "the same temperature but the metal pulls heat from my skin quicker so it feels cold.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registration-url", default="", help="printed by `manage.py lti_registration_url`")
    parser.add_argument("--kdgrade", default="", help="kdgrade's URL, when the LMS was registered by hand")
    parser.add_argument("--lms-port", type=int, default=8766, help="the LMS's port when registered by hand")
    parser.add_argument("--tool-jwks-url", default="",
                        help="registered by hand: kdgrade's keyset URL for this LMS (printed by lti_add_platform)")
    parser.add_argument("--item-title", default="", help="the item to add (default: the first offered)")
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()

    import django

    django.setup()  # the development LMS uses kdgrade's settings module for nothing but imports
    import requests

    from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, LaunchSpec
    from devtools.testing import Browser, ls_token, parse_form

    if not args.registration_url and not args.kdgrade:
        parser.error("give --registration-url, or --kdgrade for an LMS registered by hand")
    base = (args.kdgrade or args.registration_url.split("/lti/register/")[0]).rstrip("/")
    port = 0 if args.registration_url else args.lms_port
    with DevPlatform(base, port=port, client_id="smoke-lms") as lms:
        lms.tool_jwks_url = args.tool_jwks_url or None
        if args.registration_url:
            step = "Dynamic Registration"
            page = requests.get(lms.registration_start_url(args.registration_url), timeout=30)
            _check(page.status_code == 200 and "org.imsglobal.lti.close" in page.text, step, page)
            print(f"ok  {step}: kdgrade registered the LMS (client id {lms.client_id})")
        else:
            print("    registered by hand: manage.py lti_add_platform --name 'Smoke LMS' --issuer "
                  f"{lms.issuer} --client-id {lms.client_id} --deployment-id {lms.deployment_id} --auth-url "
                  f"{lms.base}/auth --token-url {lms.base}/token --keyset-url {lms.base}/jwks")

        step = "Deep Linking (teacher adds an item)"
        teacher = Browser()
        picker = teacher.launch(lms, LaunchSpec("smoke-teacher", [ROLE_INSTRUCTOR], deep_linking=True,
                                                name="Smoke Teacher"))
        _check(picker.status_code == 200 and "/lti/deep-link/" in picker.url, step, picker)
        items = re.findall(r'name="item" value="(\d+)"[^>]*>\s*([^<]+)<', picker.text)
        chosen = next((pk for pk, title in items if args.item_title in title), None)
        _check(chosen is not None, step + ": no item with an active model offered", picker)
        back = teacher.post(picker.url.split("?")[0], {"ls": ls_token(picker.url), "item": chosen,
                                                       "title": "Smoke check", "release": "immediate",
                                                       "show_feedback": "on"})
        form = parse_form(back.text)
        done = teacher.http.post(form["_action"], data={"JWT": form["JWT"]}, timeout=30)
        _check(done.status_code == 200, step + ": the LMS refused kdgrade's Deep Linking response", done)
        (record,) = lms.gradebook.deep_link_items
        column = f"{lms.base}/ags/course-1/lineitems/{record['lineitem_id']}"
        print(f"ok  {step}: activity {record['resource_link_id']}, gradebook column {column}")

        def link_spec(user: str, roles: list[str]) -> LaunchSpec:
            return LaunchSpec(user, roles, name=user, resource_link_id=record["resource_link_id"],
                              custom=record["item"]["custom"], lineitem_id=record["lineitem_id"])

        step = "student answers"
        student = Browser()
        page = student.launch(lms, link_spec("smoke-student", [ROLE_LEARNER]))
        _check(page.status_code == 200 and 'name="response"' in page.text, step, page)
        after = student.post(page.url.split("?")[0], {"ls": ls_token(page.url), "response": ANSWER})
        _check(after.status_code == 200, step, after)
        print(f"ok  {step}")

        step = "grade reaches the LMS gradebook"
        result = _wait(lambda: lms.gradebook.result(column, "smoke-student"), 30)
        if not result or result.get("gradingProgress") != "FullyGraded":
            review = teacher.launch(lms, link_spec("smoke-teacher", [ROLE_INSTRUCTOR]))
            score_id = re.search(r'data-score-id="(\d+)"', review.text)
            _check(score_id is not None, step + ": the answer is not on the review page", review)
            teacher.post(review.url.split("?")[0], {"ls": ls_token(review.url), "action": "override_release",
                                                    "score_id": score_id.group(1), "value": "2"})
            print("    the model left the answer for review: the teacher released 2 on the review page")
            result = _wait(lambda: (r := lms.gradebook.result(column, "smoke-student"))
                           and r.get("gradingProgress") == "FullyGraded" and r, args.timeout)
        _check(bool(result) and result.get("gradingProgress") == "FullyGraded", step, None)
        print(f"ok  {step}: scoreGiven={result['scoreGiven']} of {result['scoreMaximum']}, "
              f"comment={result.get('comment', '')!r}")
    return 0


def _wait(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    return None


def _check(ok: bool, step: str, resp) -> None:
    if not ok:
        detail = f" (HTTP {resp.status_code} at {resp.url}: {resp.text[:300]!r})" if resp is not None else ""
        print(f"FAILED  {step}{detail}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    raise SystemExit(main())
