"""The UI's files over real HTTP from the real daemon: types, caching, redirect, no escape."""

from __future__ import annotations

import http.client

import pytest


def get(daemon, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.body = resp.read()
    conn.close()
    return resp


def test_root_redirects_to_the_ui(daemon):
    resp = get(daemon, "/")
    assert resp.status == 302
    assert resp.getheader("Location").endswith("/webui/")


@pytest.mark.parametrize("path,ctype", [
    ("/webui/", "text/html; charset=utf-8"),
    ("/webui", "text/html; charset=utf-8"),
    ("/webui/index.html", "text/html; charset=utf-8"),
    ("/webui/app.css", "text/css; charset=utf-8"),
    ("/webui/js/app.js", "text/javascript; charset=utf-8"),
    ("/webui/favicon.svg", "image/svg+xml"),
])
def test_files_have_their_type_and_revalidate_by_etag(daemon, path, ctype):
    resp = get(daemon, path)
    assert resp.status == 200
    assert resp.getheader("Content-Type") == ctype
    assert resp.getheader("Cache-Control") == "no-cache"
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    assert "default-src 'self'" in resp.getheader("Content-Security-Policy")
    etag = resp.getheader("ETag")
    assert etag and resp.body
    again = get(daemon, path, {"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""


@pytest.mark.parametrize("path", [
    "/webui/nope.js",
    "/webui/../webui.py",
    "/webui/%2e%2e/webui.py",
    "/webui/js/../../jobs.py",
    "/webui/js",
])
def test_anything_but_a_ui_file_is_404(daemon, path):
    resp = get(daemon, path)
    assert resp.status == 404
    assert b"Traceback" not in resp.body


def test_every_module_the_page_imports_is_served(daemon):
    """No missing file: each ES module's relative imports resolve to a 200."""
    import re
    from pathlib import Path

    ui = Path(__file__).resolve().parents[2] / "kalad" / "api" / "ui"
    for module in (ui / "js").glob("*.js"):
        for target in re.findall(r"from '\./([\w.-]+)'", module.read_text()):
            assert get(daemon, f"/webui/js/{target}").status == 200, (module.name, target)
