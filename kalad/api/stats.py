"""``GET /api/v1/stats/``: Kala's app-level figures, both spellings."""

from __future__ import annotations

import falcon

from kalad.api.errors import JSON
from kalad.api.kala_json import dumps, stats_to_wire
from kalad.service import Service


class AppStatsResource:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = JSON
        resp.data = dumps(stats_to_wire(self._service.app_stats()))
