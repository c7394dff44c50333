"""The API docs page works without internet: Swagger UI's assets come from this server (the pinned
drf-spectacular-sidecar package), never from a CDN."""

from __future__ import annotations

import re

import pytest
import requests

from scoring.api.accounts import integration_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_docs_page_loads_its_assets_from_this_server(live_server):
    assert requests.get(f"{live_server.url}/api/v1/docs/", timeout=30).status_code == 401  # not anonymous
    headers = {"Authorization": f"Token {integration_token('docs-reader')}"}
    page = requests.get(f"{live_server.url}/api/v1/docs/", headers=headers, timeout=30)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page.text)
    assert any("swagger-ui-bundle.js" in a for a in assets) and any("swagger-ui.css" in a for a in assets), assets
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), f"{asset} is not served by kdgrade"
        got = requests.get(live_server.url + asset, timeout=30)
        assert got.status_code == 200 and len(got.content) > 100, asset
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
