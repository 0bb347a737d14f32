"""``create_app(service)``: the falcon application with every route of the API.

Routes are registered without their trailing slash and falcon strips it from
requests, so ``/api/v1/job/`` and ``/api/v1/job`` are the same route (Kala answers
301 to one of them, which clients following it with GET turn into a silent no-op).
"""

from __future__ import annotations

import falcon

from kalad.api import errors
from kalad.api.guards import Guards, Policy
from kalad.api.health import Health
from kalad.api.jobs import (
    AllJobs,
    JobAction,
    JobCollection,
    JobItem,
    JobNext,
    JobRuns,
    JobStats,
    SchedulePreview,
)
from kalad.api.stats import AppStatsResource
from kalad.api.wire_cache import WireCache
from kalad.api import webui
from kalad.service import Service

PREFIX = "/api/v1"


def create_app(service: Service, policy: Policy | None = None) -> falcon.App:
    """Every route behind the guards (``policy``: the daemon's, built from the config).

    Without a policy (tests, embedding) there are no tokens and any Host is served.
    """
    app = falcon.App(middleware=[Guards(policy or Policy(allowed_hosts=frozenset({"*"})))])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    cache = WireCache(service)
    app.add_route(f"{PREFIX}/health", Health())
    app.add_route(f"{PREFIX}/job", JobCollection(service, cache))
    app.add_route(f"{PREFIX}/job/all", AllJobs(service))
    app.add_route(f"{PREFIX}/job/{{job_id}}", JobItem(service, cache))
    app.add_route(f"{PREFIX}/job/{{job_id}}/runs", JobRuns(service))
    app.add_route(f"{PREFIX}/job/{{job_id}}/next", JobNext(service))
    app.add_route(f"{PREFIX}/schedule/next", SchedulePreview(service))
    app.add_route(f"{PREFIX}/job/stats/{{job_id}}", JobStats(service))
    app.add_route(f"{PREFIX}/job/start/{{job_id}}", JobAction(service.start_job))
    app.add_route(f"{PREFIX}/job/enable/{{job_id}}", JobAction(service.enable_job))
    app.add_route(f"{PREFIX}/job/disable/{{job_id}}", JobAction(service.disable_job))
    app.add_route(f"{PREFIX}/stats", AppStatsResource(service))
    webui.add_routes(app)
    return app
