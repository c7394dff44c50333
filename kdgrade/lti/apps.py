from django.apps import AppConfig


class LtiConfig(AppConfig):
    name = "kdgrade.lti"
    label = "lti"
    verbose_name = "LTI 1.3 (Canvas, Moodle)"
    default_auto_field = "django.db.models.BigAutoField"
