"""``GET /api/v1/health/``: 200 ``{"status": "ok"}`` while the daemon serves requests.

It needs no token and says nothing else (no version, no counts), so a load
balancer or a monitor can poll it without being trusted.
"""

from __future__ import annotations

import falcon

from kalad.api.errors import JSON
from kalad.api.kala_json import dumps

_OK = dumps({"status": "ok"})


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_200
        resp.content_type = JSON
        resp.data = _OK
