from django.apps import AppConfig


class GradingConfig(AppConfig):
    name = "grading"
    verbose_name = "Grading (teacher review and student answer pages)"
    default_auto_field = "django.db.models.BigAutoField"
