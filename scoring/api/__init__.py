"""The REST API under /api/v1/ (Django REST Framework, OpenAPI schema by drf-spectacular)."""
