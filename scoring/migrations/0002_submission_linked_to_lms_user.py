"""Submissions linked to the LMS user who answered (erasing the user erases their answers); existing
LTI answers are linked by their learner_ref (the user's sub on the assignment's platform).  API
accounts that hold a token keep scoring: they get the scoring-only permissions the API now requires
(reading submissions is not granted)."""

import django.db.models.deletion
from django.db import migrations, models


def link_lti_answers(apps, schema_editor):
    Submission = apps.get_model("scoring", "Submission")
    LtiUser = apps.get_model("lti", "LtiUser")
    LtiAssignment = apps.get_model("lti", "LtiAssignment")
    platform_of = {a.assignment_id: a.context.platform_id
                   for a in LtiAssignment.objects.select_related("context")}
    for sub in Submission.objects.filter(source="lti", lti_user__isnull=True).exclude(learner_ref="").iterator():
        platform_id = platform_of.get(sub.assignment_id)
        if platform_id is None:
            continue
        user = LtiUser.objects.filter(platform_id=platform_id, sub=sub.learner_ref).first()
        if user is not None:
            Submission.objects.filter(pk=sub.pk).update(lti_user=user)


def token_holders_keep_scoring(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Token = apps.get_model("authtoken", "Token")
    perms = list(Permission.objects.filter(content_type__app_label="scoring",
                                           codename__in=["add_submission", "view_item"]))
    if not perms:
        return  # a fresh database: permissions are made after migrating, and nobody holds a token yet
    for token in Token.objects.select_related("user"):
        token.user.user_permissions.add(*perms)


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0001_initial"),
        ("lti", "0004_per_platform_keys_single_use_registration_keys_hashed_launch_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="lti_user",
            field=models.ForeignKey(blank=True, help_text="The LMS user who answered (LTI answers): erasing the user erases their answers.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="submissions", to="lti.ltiuser"),
        ),
        migrations.RunPython(link_lti_answers, migrations.RunPython.noop),
        migrations.RunPython(token_holders_keep_scoring, migrations.RunPython.noop),
    ]
