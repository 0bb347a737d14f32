"""The web UI's static files (``kalad/api/ui/``) at ``/webui/``, and ``/`` redirecting there.

The UI is plain HTML, CSS and ES modules talking to the JSON API from the same
origin, so serving it is only a matter of reading files: the right Content-Type,
an ETag so browsers revalidate cheaply (``no-cache``: the files carry no content
hash in their names, so a long cache lifetime would serve a stale UI after an
upgrade), and headers that keep the page from being framed or sniffed. Only
regular files inside the UI folder are served; anything else is a 404.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

UI_DIR = Path(__file__).resolve().parent / "ui"
PREFIX = "/webui"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
}


class StaticFiles:
    """``GET /webui/`` (the app's page) and ``GET /webui/{path}`` (its assets)."""

    def __init__(self, root: Path = UI_DIR) -> None:
        self._root = root.resolve()
        self._cache: dict[Path, tuple[float, bytes, str]] = {}

    def _file(self, rel: str) -> Path:
        path = (self._root / rel).resolve()
        if not path.is_relative_to(self._root) or not path.is_file() or path.suffix not in CONTENT_TYPES:
            raise falcon.HTTPNotFound(description=f"{PREFIX}/{rel}: no such file")
        return path

    def _read(self, path: Path) -> tuple[bytes, str]:
        """The file's bytes and ETag, re-read only when its modification time changes."""
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            data = path.read_bytes()
            cached = (mtime, data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
            self._cache[path] = cached
        return cached[1], cached[2]

    def _serve(self, req: falcon.Request, resp: falcon.Response, rel: str) -> None:
        path = self._file(rel)
        data, etag = self._read(path)
        resp.content_type = CONTENT_TYPES[path.suffix]
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("ETag", etag)
        for name, value in SECURITY_HEADERS.items():
            resp.set_header(name, value)
        if etag in (req.get_header("If-None-Match") or "").replace(" ", "").split(","):
            resp.status = falcon.HTTP_304
            return
        resp.status = falcon.HTTP_200
        resp.data = data

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str = "") -> None:
        self._serve(req, resp, path or "index.html")

    on_head = on_get


class RootRedirect:
    """``GET /`` sends a browser to the UI."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_302
        resp.location = f"{PREFIX}/"

    on_head = on_get


def add_routes(app: falcon.App) -> None:
    static = StaticFiles()
    app.add_route("/", RootRedirect())
    app.add_route(PREFIX, static)
    app.add_route(f"{PREFIX}/{{path:path}}", static)
