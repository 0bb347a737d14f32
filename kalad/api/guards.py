"""The API's front door: Host allowlist, Origin check, bearer tokens, rate limit, audit.

One falcon middleware, applied to every request before routing, in this order:

1. **Host** must be a loopback name, an IP literal, the listen address or one of
   ``[api] allowed_hosts``: a DNS-rebinding page (``Host: evil.example``
   resolving to 127.0.0.1) is refused with 403.
2. ``GET /api/v1/health/`` is answered by everyone (it says nothing but "ok"), and
   so are the web UI's static files (``/webui/``): they hold no data.
3. **Origin**: a POST/PUT/PATCH/DELETE that carries an ``Origin`` naming another
   site (or ``Sec-Fetch-Site: cross-site``) is refused with 403, so a web page
   cannot create or start jobs through the user's browser. Requests without an
   ``Origin`` (curl, Kala's Go client, kalactl) are unaffected. No CORS headers
   are ever sent.
4. **Tokens**, when any are configured: ``Authorization: Bearer <token>``; 401
   without a valid one, 403 when it lacks the route's scope, both with
   ``WWW-Authenticate``. Requests are then rate limited per token (per peer
   address while unauthenticated), 429 with ``Retry-After``.
5. **Audit**: every request that is not a GET/HEAD/OPTIONS is logged at INFO by
   the ``kalad.audit`` logger: who, method, route, job id and status.

Without tokens kalad listens only on loopback (the daemon refuses anything
else), and steps 4's checks are off, as before.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import falcon

from kalad.tokens import Token, TokenRegistry

audit_log = logging.getLogger("kalad.audit")

PREFIX = "/api/v1"
HEALTH = f"{PREFIX}/health"
WEBUI = "/webui"  # the web UI's static files: no data, so no token (its API calls need one)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Bearer realm="kalad"'


def host_of(value: str) -> str:
    """The host part of a ``Host`` header or an origin's netloc, lower case, no port."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs (``None``: no token needed). Unknown routes need ``read``."""
    path = path.rstrip("/") or "/"
    if method in READ_METHODS:
        public = path in (HEALTH, "/", WEBUI) or path.startswith(WEBUI + "/")
        return None if public else "read"
    if method == "DELETE" and path == f"{PREFIX}/job/all":
        return "admin"
    if method == "POST" and path.startswith(f"{PREFIX}/job/start/"):
        return "run"
    return "write"


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if a request by ``key`` may go ahead now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            level, then = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - then) * self.rate)
            if level >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self._max_keys:
                    self._forget_full(now)
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing a new bucket would not."""
        for key, (level, then) in list(self._buckets.items()):
            if level + (now - then) * self.rate >= self.burst:
                del self._buckets[key]


@dataclass(frozen=True)
class Policy:
    """What the guards enforce; built by the daemon from the config."""

    tokens: TokenRegistry = field(default_factory=TokenRegistry)
    allowed_hosts: frozenset[str] = frozenset()  # "*" allows any Host
    listen_host: str = ""
    rate: float = 0.0
    burst: int = 1
    max_body: int = 1024 * 1024


class Guards:
    """The falcon middleware; see the module docstring for what it does, in order."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        hosts = {host_of(h) for h in policy.allowed_hosts if h.strip()}
        # An Origin on another port of the same machine is another site: only names the
        # admin listed (e.g. the reverse proxy's) are trusted as origins, whatever the port.
        self._origin_hosts = frozenset(hosts - {"*"})
        if policy.listen_host:
            hosts.add(host_of(policy.listen_host))
        self._any_host = "*" in hosts
        self._hosts = frozenset(hosts | LOOPBACK_NAMES)
        self._limiter = RateLimiter(policy.rate, policy.burst)

    # ---- falcon hooks --------------------------------------------------------------

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.max_body = self._policy.max_body
        req.context.who = _peer(req)
        req.context.job_id = ""
        self._check_host(req)
        if req.method == "OPTIONS":
            return  # falcon answers with Allow only: no CORS pre-flight is ever granted
        scope = required_scope(req.method, req.path)
        if scope is None:
            return
        if req.method not in READ_METHODS:
            self._check_origin(req)
        if len(self._policy.tokens):
            self._authorize(req, scope)

    def process_resource(self, req, resp, resource, params) -> None:
        req.context.job_id = params.get("job_id", "")

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        if req.method in READ_METHODS:
            return
        status = resp.status
        code = status if isinstance(status, int) else int(str(status).split()[0])
        job_id = getattr(req.context, "job_id", "")  # from the route, or set by POST /job/
        audit_log.info("audit %s method=%s route=%s job=%s status=%d",
                       getattr(req.context, "who", "-"), _printable(req.method),
                       _printable(req.uri_template or req.path), _printable(job_id) or "-", code)

    # ---- the checks ----------------------------------------------------------------

    def _host_allowed(self, host: str) -> bool:
        return self._any_host or host in self._hosts or _is_ip(host)

    def _check_host(self, req: falcon.Request) -> None:
        header = req.get_header("Host")
        if header is None:
            return  # HTTP/1.0 without Host: no browser sends that
        host = host_of(header)
        if not self._host_allowed(host):
            raise falcon.HTTPForbidden(
                description=f"Host {host!r} is not served here; add it to [api] "
                            "allowed_hosts if it is a name of this machine")

    def _check_origin(self, req: falcon.Request) -> None:
        if (req.get_header("Sec-Fetch-Site") or "").lower() == "cross-site":
            raise falcon.HTTPForbidden(
                description="cross-site requests may not change anything")
        origin = req.get_header("Origin")
        if origin is None:
            return
        theirs = _site(origin.strip())
        if theirs is None:
            raise falcon.HTTPForbidden(
                description=f"Origin {origin[:80]!r} may not change anything")
        ours = _site("//" + (req.get_header("Host") or ""), default_scheme=req.scheme)
        same = ours is not None and ours == theirs
        if not same and theirs[1] not in self._origin_hosts:
            raise falcon.HTTPForbidden(
                description=f"Origin {origin[:80]!r} is another site; cross-site requests "
                            "may not change anything")

    def _authorize(self, req: falcon.Request, scope: str) -> None:
        token = self._bearer(req)
        key = f"token:{token.name}" if token else _peer(req)
        if token is not None:
            req.context.who = f"token={token.name} {_peer(req)}"
        wait = self._limiter.take(key)
        if wait > 0:
            raise falcon.HTTPTooManyRequests(
                description=f"too many requests; retry in {math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)))
        if token is None:
            if req.get_header("Authorization") is None:
                message = "this API needs a token: send 'Authorization: Bearer <token>'"
                challenge = REALM
            else:
                message = "the token is not valid"
                challenge = f'{REALM}, error="invalid_token"'
            raise falcon.HTTPUnauthorized(description=message, challenges=[challenge])
        if not token.allows(scope):
            raise falcon.HTTPForbidden(
                description=f"token {token.name!r} lacks the {scope!r} scope this request needs",
                headers={"WWW-Authenticate":
                         f'{REALM}, error="insufficient_scope", scope="{scope}"'})

    def _bearer(self, req: falcon.Request) -> Token | None:
        header = req.get_header("Authorization")
        if not header:
            return None
        kind, _, value = header.strip().partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            return None
        return self._policy.tokens.verify(value.strip())


def _printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: spaces and control characters %-escaped, cut short."""
    return "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}"
                   for c in text[:limit])


def _peer(req: falcon.Request) -> str:
    """``addr=10.0.0.7``, or ``uid=1000`` for a client on the Unix socket."""
    addr = req.remote_addr or "-"
    return addr if addr.startswith("uid=") else f"addr={addr}"


def _site(url: str, default_scheme: str = "") -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or ``//host:port``; ``None`` if unusable."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme or default_scheme
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port
