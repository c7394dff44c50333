"""The admin shows the demo item; framing headers suit an LTI tool."""

import pytest
from django.conf import settings

from scoring.demo_data import load_demo
from scoring.models import Item, ModelVersion


@pytest.mark.django_db
def test_demo_item_is_visible_in_the_admin(admin_client):
    load_demo()
    load_demo()  # idempotent
    item = Item.objects.get(external_id="heat-spoon")
    assert item.rubric_levels.count() == 3
    assert item.submissions.count() == 36
    page = admin_client.get("/admin/scoring/item/")
    assert page.status_code == 200
    assert b"heat-spoon" in page.content


@pytest.mark.django_db
def test_only_one_active_model_version_per_item_is_enforced_by_the_database():
    from django.db import IntegrityError, transaction

    item = load_demo()
    ModelVersion.objects.create(item=item, version=1, status=ModelVersion.Status.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(item=item, version=2, status=ModelVersion.Status.ACTIVE)
    ModelVersion.objects.create(item=item, version=3, status=ModelVersion.Status.READY)
    assert item.model_versions.filter(status="active").count() == 1


@pytest.mark.django_db
def test_tool_pages_may_be_framed_but_the_admin_may_not(client):
    home = client.get("/")
    assert "X-Frame-Options" not in home.headers
    assert home.headers["Content-Security-Policy"] == f"frame-ancestors {settings.FRAME_ANCESTORS}"
    admin = client.get("/admin/login/")
    assert admin.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


@pytest.mark.django_db
def test_health_check_reports_the_database(client):
    body = client.get("/healthz").json()
    assert body["database"] == "ok"
