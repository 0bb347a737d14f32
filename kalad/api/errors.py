"""The one place that maps kalad's errors to HTTP statuses and ``{"error": ...}`` bodies.

Falcon's own errors (404 no route, 405 wrong method, 413, ...) get the same JSON
shape through the error serializer; anything unexpected is logged with its
traceback and answered with a 500 whose body names no internals.
"""

from __future__ import annotations

import logging

import falcon

from kalad.api.kala_json import dumps
from kalad.core.errors import InvalidJob, JobNotFound, StoreError

log = logging.getLogger(__name__)

JSON = "application/json;charset=UTF-8"  # Kala's exact header value


def _respond(resp: falcon.Response, status: str, message: str) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = dumps({"error": message})


def _invalid(req, resp, exc, params) -> None:
    _respond(resp, falcon.HTTP_400, str(exc))


def _not_found(req, resp, exc, params) -> None:
    _respond(resp, falcon.HTTP_404, str(exc))


def _store(req, resp, exc, params) -> None:
    log.error("%s %s: store error: %s", req.method, req.path, exc)
    _respond(resp, falcon.HTTP_503, f"the job store cannot serve this request: {exc}")
    resp.set_header("Retry-After", "5")


def _unexpected(req, resp, exc, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("%s %s failed", req.method, req.path)
    _respond(resp, falcon.HTTP_500, f"internal error ({type(exc).__name__}); see the daemon's log")


def _serialize(req, resp, exc: falcon.HTTPError) -> None:
    resp.content_type = JSON
    message = exc.description or exc.title or str(exc.status)
    resp.data = dumps({"error": message})


def install(app: falcon.App) -> None:
    """Register every mapping on ``app`` (most generic first: falcon picks the closest)."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(InvalidJob, _invalid)
    app.add_error_handler(JobNotFound, _not_found)
    app.add_error_handler(StoreError, _store)
    app.set_error_serializer(_serialize)
