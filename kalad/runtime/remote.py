"""The remote runner: the launcher for remote jobs, one HTTP request per attempt.

Requests run on a small bounded thread pool with ``urllib`` (stdlib only), never on
the caller's thread. Only http and https are reachable: the opener is built without
urllib's file, ftp and data handlers, so neither a rendered URL nor a redirect can
read local files. The response body is read in chunks and only a bounded tail kept.

Every connection is tracked, so a request can be cut from another thread by shutting
its socket down. That gives the whole-request deadline (a timer per request; the
socket timeout bounds each step too, and is all that bounds connecting) and frees
the workers of requests still running when kalad stops.
"""

from __future__ import annotations

import functools
import http.client
import logging
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import urlsplit

from kalad.core.ports import Attempt, Clock, HttpRequest
from kalad.core.runs import AttemptOutcome
from kalad.runtime.clock import sleep_until

log = logging.getLogger(__name__)

Done = Callable[[AttemptOutcome], None]

USER_AGENT = "kalad/0.1"
_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: a valid method
_REFUSED = "not started: kalad is stopping"
_KILLED = "killed by kalad at shutdown"


class _Call:
    """One attempt from launch to report: reports once, and can be cut from any thread."""

    def __init__(self, attempt: Attempt, done: Done) -> None:
        self.attempt = attempt
        self.done = done
        self.started_at: datetime | None = None  # set when a worker takes it up
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._cut = ""  # why the request was cut: "timeout" or "shutdown"
        self._finished = False
        self._reported = False

    def attach(self, sock: socket.socket) -> None:
        """Track the connection just opened (a redirect opens another one)."""
        with self._lock:
            self._sock = sock
            cut = self._cut
        if cut:
            raise ConnectionAbortedError(f"request cut ({cut})")

    def cut(self, why: str) -> None:
        """Stop the request where it is; a no-op once it has finished."""
        with self._lock:
            if self._finished or self._cut:
                return
            self._cut = why
            sock = self._sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the raw fd, even under TLS
            except OSError:
                pass  # already closed

    def finish(self) -> str:
        """Mark the request over; return why it was cut, or ""."""
        with self._lock:
            self._finished = True
            return self._cut

    def begin(self, now: datetime) -> bool:
        """Mark the request started; False if it was already reported (killed while queued)."""
        with self._lock:
            if self._reported:
                return False
            self.started_at = now
            return True

    def claim_report(self) -> bool:
        """True the first time only: whoever gets it calls ``done``."""
        with self._lock:
            claimed, self._reported = not self._reported, True
            return claimed

    def abandon(self) -> str:
        """Claim the report for a shutdown kill; return its message, or "" if too late."""
        with self._lock:
            if self._reported:
                return ""
            self._reported = True
            return _KILLED if self.started_at is not None else _REFUSED


class _Tracked:
    """Mixin for ``http.client`` connections that hands each new socket to its call."""

    def __init__(self, *args: object, call: _Call, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._call = call

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._call.attach(self.sock)  # type: ignore[attr-defined]


class _HTTPConnection(_Tracked, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, http.client.HTTPSConnection):
    pass


class _Handler(urllib.request.HTTPSHandler):
    """Opens http and https URLs through connections tracked by ``call``."""

    def __init__(self, call: _Call) -> None:
        super().__init__()
        self._call = call

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, call=self._call), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPSConnection, call=self._call), req)

    http_request = urllib.request.AbstractHTTPHandler.do_request_


def _opener(call: _Call) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    _Handler(call), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPRedirectHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class _Invalid(ValueError):
    """The request cannot be made as given; the message says why."""


def _timed_out(timeout: float | None) -> str:
    return "timed out" if timeout is None else f"timed out after {timeout:g} s"


def _build(spec: HttpRequest) -> urllib.request.Request:
    """The urllib request for ``spec``, or ``_Invalid``."""
    method = (spec.method or "GET").upper()
    if not _TOKEN.fullmatch(method):
        raise _Invalid(f"invalid method {method!r}")
    try:
        parts = urlsplit(spec.url)
        host = parts.hostname
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise _Invalid(f"invalid URL {spec.url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise _Invalid(f"invalid URL {spec.url!r}: must be http:// or https:// with a host")
    # urllib keeps one value per name (case-insensitive): join repeats, as HTTP allows.
    joined: dict[str, tuple[str, list[str]]] = {}
    for name, value in spec.headers:
        joined.setdefault(name.lower(), (name, []))[1].append(value)
    req = urllib.request.Request(spec.url, data=spec.body.encode() if spec.body else None,
                                 method=method)
    for name, values in joined.values():
        req.add_header(name, ", ".join(values))
    if "user-agent" not in joined:
        req.add_header("User-Agent", USER_AGENT)
    return req


class _Exchange:
    """What came back so far: the status once known, and the tail of the body."""

    def __init__(self, limit: int) -> None:
        self.status: int | None = None
        self.tail = bytearray()
        self.trimmed = False
        self._limit = limit

    def read(self, response: http.client.HTTPResponse | urllib.error.HTTPError) -> None:
        self.status = response.status
        with response:
            while chunk := response.read(_CHUNK):
                self.tail += chunk
                excess = len(self.tail) - self._limit
                if excess > 0:
                    del self.tail[:excess]
                    self.trimmed = True

    def output(self) -> str:
        data = bytes(self.tail)
        if self.trimmed:
            # The cut may have split a UTF-8 sequence: drop its continuation bytes.
            skip = 0
            while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", errors="replace")


def _exchange(spec: HttpRequest, call: _Call, got: _Exchange) -> str:
    """Make the request, filling ``got``; return why it failed, or ""."""
    url = spec.url
    try:
        req = _build(spec)
        try:
            response = _opener(call).open(req, timeout=spec.timeout)
        except urllib.error.HTTPError as exc:
            response = exc  # an error status is a response too: read its body
        got.read(response)
    except _Invalid as exc:
        return str(exc)
    except TimeoutError:
        return _timed_out(spec.timeout)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return _timed_out(spec.timeout)
        if isinstance(exc.reason, ConnectionRefusedError):
            return f"connection refused: {url}"
        return f"cannot reach {url}: {exc.reason}"
    except http.client.InvalidURL as exc:
        return f"invalid URL {url!r}: {exc}"
    except http.client.HTTPException as exc:
        return f"bad response from {url}: {exc or type(exc).__name__}"
    except ValueError as exc:  # e.g. a header value with a line break
        return f"invalid request: {exc}"
    except OSError as exc:
        return f"connection error with {url}: {exc.strerror or exc}"
    if got.status not in spec.expected_codes:
        codes = ", ".join(str(code) for code in spec.expected_codes)
        return f"HTTP status {got.status}, expected one of {codes}"
    return ""


class RemoteRunner:
    """Runs remote attempts on a bounded pool and reports each outcome exactly once."""

    def __init__(self, clock: Clock, workers: int = 8, body_limit: int = 64 * 1024) -> None:
        if workers < 1:
            raise ValueError(f"workers must be positive, not {workers}")
        if body_limit < 1:
            raise ValueError(f"body_limit must be positive, not {body_limit}")
        self._clock = clock
        self._body_limit = body_limit
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._calls: set[_Call] = set()  # (lock) launched, not yet reported
        self._closing = False  # (lock) terminate_all or stop began: launch refuses
        self._hurried = False  # (lock) hurry(): terminate_all gives up waiting now

    def launch(self, attempt: Attempt, done: Done) -> None:
        """Queue the request and return; ``done`` runs once, on a worker thread.

        When kalad is stopping, ``done`` runs here, at once, with a killed outcome.
        """
        call = _Call(attempt, done)
        with self._lock:
            refused = self._closing
            if not refused:
                self._calls.add(call)
        if not refused:
            try:
                self._pool.submit(self._run, call)
                return
            except RuntimeError:  # the pool is shut down
                self._forget(call)
        call.claim_report()
        log.warning("cannot start job=%s run=%s: %s", attempt.job_name, attempt.run_id, _REFUSED)
        self._deliver(call, killed=True, message=_REFUSED)

    def terminate_all(self, grace: float) -> None:
        """Refuse new attempts, wait up to ``grace`` s, then report the rest as killed.

        Returns once every ``done`` has run; a late real result is dropped.
        """
        with self._lock:
            self._closing = True
        now = self._clock.monotonic()
        deadline = now + max(grace, 0.0)
        next_report = now
        with self._changed:
            while self._calls and now < deadline and not self._hurried:
                if now >= next_report:
                    next_report = now + 1.0
                    log.info("waiting for %d request%s: %s", len(self._calls),
                             "" if len(self._calls) == 1 else "s",
                             ", ".join(f"{c.attempt.job_name} ({c.attempt.request.url})"
                                       for c in self._calls if c.attempt.request))
                self._changed.wait(min(deadline, next_report) - now)
                now = self._clock.monotonic()
            left = list(self._calls)
        for call in left:
            message = call.abandon()
            if message:
                if message == _KILLED:
                    log.warning("job=%s run=%s request still running after the stop grace; "
                                "abandoning it", call.attempt.job_name, call.attempt.run_id)
                self._deliver(call, killed=True, message=message)
                self._forget(call)
            call.cut("shutdown")
        with self._changed:
            while self._calls:  # reported by their workers right now
                self._changed.wait()

    def hurry(self) -> None:
        """Make a running (or the next) ``terminate_all`` stop waiting for requests now."""
        with self._changed:
            self._hurried = True
            self._changed.notify_all()

    def stop(self) -> None:
        """Shut the pool down, first reporting anything still running as killed.

        Workers are not waited for: their requests were cut, and one still connecting
        ends at its timeout (or the system's connect timeout).
        """
        with self._lock:
            self._closing = True
            left = bool(self._calls)
        if left:
            self.terminate_all(0.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, call: _Call) -> None:
        if self._closing:
            return  # queued when kalad began to stop: terminate_all reports it as not started
        sleep_until(call.attempt.start_at)
        if not call.begin(self._clock.now()):
            return
        spec = call.attempt.request
        got = _Exchange(self._body_limit)
        timer: threading.Timer | None = None
        try:
            if spec is None:
                raise ValueError("the attempt has no HTTP request")
            if spec.timeout is not None:
                timer = threading.Timer(max(spec.timeout, 0.0), call.cut, ("timeout",))
                timer.daemon = True
                timer.start()
            attempt = call.attempt
            log.info("job=%s run=%s pid=- name=%r started (%s, attempt %d)", attempt.job_id,
                     attempt.run_id, attempt.job_name, attempt.trigger, attempt.number)
            log.debug("run=%s %s %s", attempt.run_id, spec.method, spec.url)
            message = _exchange(spec, call, got)
        except Exception as exc:
            log.warning("job=%s run=%s request failed inside kalad", call.attempt.job_name,
                        call.attempt.run_id, exc_info=True)
            message = f"internal error: {exc!r}"
        finally:
            if timer is not None:
                timer.cancel()
        if call.finish() == "timeout" and spec is not None:
            message = _timed_out(spec.timeout)
        log.debug("response job=%s run=%s status=%s %s", call.attempt.job_name,
                  call.attempt.run_id, got.status, message)
        if call.claim_report():  # else killed at shutdown already: the late result is dropped
            self._deliver(call, exit_status=got.status, output=got.output(), message=message)
        self._forget(call)

    def _deliver(self, call: _Call, exit_status: int | None = None, output: str = "",
                 message: str = "", killed: bool = False) -> None:
        """Call ``done`` (the caller has claimed the report)."""
        now = self._clock.now()
        outcome = AttemptOutcome(started_at=call.started_at or now, ended_at=now,
                                 exit_status=exit_status, output=output, message=message,
                                 killed=killed)
        try:
            call.done(outcome)
        except Exception:
            log.exception("done callback failed for job=%s run=%s", call.attempt.job_name,
                          call.attempt.run_id)

    def _forget(self, call: _Call) -> None:
        with self._changed:
            self._calls.discard(call)
            self._changed.notify_all()
