"""``/api/docs`` works with no internet: Swagger UI comes from the shop's own static files."""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def test_the_docs_page_loads_swagger_ui_from_the_shop_itself(client):
    page = client.get("/api/docs").content.decode()
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert any(s.endswith("swagger-ui-bundle.js") for s in scripts), scripts
    assert all(not urlsplit(s).netloc for s in scripts), f"loaded from elsewhere: {scripts}"
    for asset in scripts:
        response = client.get(asset)
        assert response.status_code == 200, asset


@pytest.mark.browser
@pytest.mark.skipif(
    not shutil.which(os.environ.get("CHROMIUM", "chromium")) and not os.path.exists("/usr/bin/chromium"),
    reason="needs Chromium (apt-get install chromium)",
)
def test_the_docs_list_the_operations_with_the_network_blocked(page, live_server):
    blocked: list[str] = []

    def only_localhost(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_localhost)
    page.goto(live_server.url + "/api/docs")
    page.locator(".opblock-summary-path", has_text="/api/orders").first.wait_for(timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/products" in p for p in paths), paths
    assert not blocked, blocked
