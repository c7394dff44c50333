"""kdgrade: LTI 1.3 short-answer scoring with distilled ONNX models."""

from kdgrade.celery import app as celery_app

__all__ = ["celery_app"]
