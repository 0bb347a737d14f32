"""Kala's JSON: the only module that knows Kala's wire names, key order and quirks.

Decoding (``parse_job``) follows Go's ``json.Unmarshal`` into Kala's ``Job`` struct:

* keys match case-insensitively (``"Name"``, ``"NAME"`` fill ``name``); the one key
  without a JSON tag is ``TemplateDelimiters`` (any letter case), so
  ``template_delimiters`` is an unknown key; unknown keys are ignored;
* duplicate keys: the last one wins, whatever its letter case; two ``metadata`` or
  ``remote_properties`` objects (or two ``headers`` maps) are merged, as Go does;
* ``null`` leaves a string, number, bool, time or object field as it was (its default)
  and clears an array or map field;
* a value of the wrong JSON type is an ``InvalidJob`` whose message names the field
  and what was expected. Integers must be JSON integers (``2.0``, ``true``, ``"3"``
  are refused) inside Go's range for the field, capped at 2**63-1 so that every
  store can hold them.

Deliberate differences from Go (a client could only notice them with odd input):

* ``null`` *inside* an array (``"parent_jobs": ["a", null]``) is refused instead of
  being read as ``""`` / ``0``; a ``null`` header value (``{"X": null}``) is read as
  no values, like Go.
* The body must be UTF-8 (Go silently replaces invalid bytes) and must be a JSON
  object: a ``null`` body is refused here instead of failing validation later.
* Lone UTF-16 surrogates (``"\\ud800"``) become U+FFFD, as in Go, so every string
  kalad keeps can be written back as UTF-8.

Server-owned fields are decoded (so their types are checked, as Go does) and then
dropped: ``id`` (the caller supplies one), ``next_run_at`` (the service computes
it), ``stats`` (runs live in the store), ``is_done`` (server state) and
``dependent_jobs`` (kalad derives a job's children from the children's
``parent_jobs``, so the parent/child link is written once, with the child).
Client ``metadata`` IS kept, as Kala keeps it.

Encoding follows Go's ``json.Encoder``: struct fields in declaration order, map keys
sorted, compact, one trailing newline, ``<``, ``>``, ``&``, U+2028 and U+2029
escaped, times as RFC 3339 with trailing fractional zeros dropped. kalad emits
every time in UTC (``Z``); the zero time ``0001-01-01T00:00:00Z`` means "never".
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Sequence

from kalad.core.errors import InvalidJob
from kalad.core.job import (
    NO_METADATA,
    NO_REMOTE,
    SECRET_MASK,
    Job,
    JobType,
    Metadata,
    RemoteProperties,
    make_env,
)
from kalad.core.runs import Run
from kalad.core.stats import AppStats

__all__ = [
    "ZERO_TIME",
    "dumps",
    "format_time",
    "job_to_wire",
    "parse_job",
    "parse_time",
    "run_to_stat",
    "run_to_wire",
    "stats_to_wire",
]

UTC = timezone.utc
ZERO_TIME = "0001-01-01T00:00:00Z"
INT_MAX = 2**63 - 1  # every integer kalad accepts fits a signed 64-bit column
INT_MIN = -(2**63)


# --------------------------------------------------------------------------- times


_FORMATTED: dict[datetime, str] = {}
_FORMATTED_MAX = 8192


def format_time(dt: datetime | None) -> str:
    """RFC 3339 in UTC with ``Z`` and Go's RFC3339Nano fraction (trailing zeros dropped).

    ``None`` is Go's zero time, ``"0001-01-01T00:00:00Z"``. A naive datetime is taken
    to be UTC already. Results are memoised (a job's times repeat in every GET);
    equal aware datetimes are the same instant, so they share one UTC text.
    """
    if dt is None:
        return ZERO_TIME
    text = _FORMATTED.get(dt)
    if text is None:
        text = _format_time(dt)
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        _FORMATTED[dt] = text
    return text


def _format_time(dt: datetime) -> str:
    tz = dt.tzinfo
    if tz is UTC:
        text = dt.isoformat()[:-6]  # drop "+00:00"
    elif tz is None:
        text = dt.isoformat()
    else:
        offset = dt.utcoffset()
        dt = dt.replace(tzinfo=None)
        if offset:
            try:
                dt = dt - offset
            except OverflowError:
                return ZERO_TIME if offset > timedelta(0) else "9999-12-31T23:59:59.999999Z"
        text = dt.isoformat()
    if dt.microsecond:
        return text.rstrip("0") + "Z"
    return text + "Z"


_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_time(text: str, field: str) -> datetime | None:
    """Parse an RFC 3339 time into an aware UTC datetime; the zero time gives ``None``.

    Any number of fractional digits is accepted (beyond microseconds they are
    truncated); the offset may be ``Z`` or ``±hh:mm``. Anything else raises
    ``InvalidJob`` naming ``field``.
    """
    if text == ZERO_TIME:
        return None
    m = _TIME_RE.fullmatch(text) if type(text) is str else None
    if m is None:
        raise InvalidJob(
            f"{field}: expected an RFC 3339 time like \"2024-05-01T12:00:00Z\", got {_show(text)}"
        )
    year, month, day, hour, minute, second, frac, z, sign, oh, om = m.groups()
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, UTC
        )
        if not z:
            oh_i, om_i = int(oh), int(om)
            if oh_i > 23 or om_i > 59:
                raise ValueError(f"offset {sign}{oh}:{om} out of range")
            offset = timedelta(hours=oh_i, minutes=om_i)
            dt = dt - offset if sign == "+" else dt + offset
    except (ValueError, OverflowError) as exc:
        raise InvalidJob(f"{field}: {_show(text)} is not a valid time ({exc})") from None
    if dt.year == 1 and dt.month == 1 and dt.day == 1 and not (
        dt.hour or dt.minute or dt.second or dt.microsecond
    ):
        return None  # the zero instant written with an offset
    return dt


# ------------------------------------------------------------------------ decoding


class _Obj(list):
    """A decoded JSON object: its (key, value) pairs in order, duplicates included."""

    __slots__ = ()


def _no_constant(name: str) -> Any:
    raise InvalidJob(f"body: invalid JSON: {name} is not allowed")


_DECODER = json.JSONDecoder(object_pairs_hook=_Obj, parse_constant=_no_constant)


def _show(value: Any) -> str:
    """A short rendering of a JSON value for error messages."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is _Obj:
        return "an object"
    if type(value) is list:
        return "an array"
    if type(value) is str:
        if len(value) > 40:
            value = value[:40] + "..."
        return json.dumps(value, ensure_ascii=False)
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _wrong(path: str, expected: str, value: Any) -> InvalidJob:
    return InvalidJob(f"{path}: expected {expected}, got {_show(value)}")


def _fold(key: str) -> str:
    """Go's case folding for struct keys: ASCII case, plus 'ſ' ~ 's' ('K' ~ 'k' via lower)."""
    key = key.lower()
    if not key.isascii():
        key = key.replace("\u017f", "s")
    return key


# Each decoder takes (value, previous value or None, path) and returns the new value;
# None means "the field's default" (and is never stored in the dicts passed on).


def _d_str(value: Any, old: Any, path: str) -> Any:
    if type(value) is str:
        return value
    if value is None:
        return old
    raise _wrong(path, "a string", value)


def _d_bool(value: Any, old: Any, path: str) -> Any:
    if value is True or value is False:
        return value
    if value is None:
        return old
    raise _wrong(path, "true or false", value)


def _d_uint(value: Any, old: Any, path: str) -> Any:
    if type(value) is int and value >= 0:
        if value > INT_MAX:
            raise InvalidJob(f"{path}: {_show(value)} is too large (at most {INT_MAX})")
        return value
    if value is None:
        return old
    raise _wrong(path, "a non-negative integer", value)


def _d_int(value: Any, old: Any, path: str) -> Any:
    if type(value) is int:
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidJob(f"{path}: {_show(value)} is out of range")
        return value
    if value is None:
        return old
    raise _wrong(path, "an integer", value)


def _d_time(value: Any, old: Any, path: str) -> Any:
    if type(value) is str:
        return parse_time(value, path)
    if value is None:
        return old
    raise _wrong(path, "an RFC 3339 time string or null", value)


def _d_strs(value: Any, old: Any, path: str) -> Any:
    if value is None:
        return ()
    if type(value) is not list:
        raise _wrong(path, "an array of strings or null", value)
    for i, item in enumerate(value):
        if type(item) is not str:
            raise _wrong(f"{path}[{i}]", "a string", item)
    return tuple(value)


def _d_ints(value: Any, old: Any, path: str) -> Any:
    if value is None:
        return None
    if type(value) is not list:
        raise _wrong(path, "an array of integers or null", value)
    for i, item in enumerate(value):
        if type(item) is not int or not INT_MIN <= item <= INT_MAX:
            raise _wrong(f"{path}[{i}]", "an integer", item)
    return tuple(value)


def _d_type(value: Any, old: Any, path: str) -> Any:
    if value is None:
        return old
    if type(value) is int and (value == 0 or value == 1):
        return JobType(value)
    raise InvalidJob(f"{path}: must be 0 (local) or 1 (remote), got {_show(value)}")


def _d_headers(value: Any, old: Any, path: str) -> Any:
    if value is None:
        return None
    if type(value) is not _Obj:
        raise _wrong(path, "an object like {\"Name\": [\"value\"]} or null", value)
    headers = dict(old) if old else {}  # Go decodes into the existing map: merge
    for name, values in value:
        if values is None:
            headers[name] = ()
        elif type(values) is list and all(type(v) is str for v in values):
            headers[name] = tuple(values)
        else:
            raise InvalidJob(
                f"{path}: values must be arrays of strings, got {_show(values)} for {_show(name)}"
            )
    return headers


def _d_env(secret: bool) -> Callable[[Any, Any, str], Any]:
    """``{"NAME": "value"}``; a secret value is never echoed in an error message."""

    def decode(value: Any, old: Any, path: str) -> Any:
        if value is None:
            return None
        if type(value) is not _Obj:
            raise _wrong(path, 'an object like {"NAME": "value"} or null', value)
        env = dict(old) if old else {}  # Go decodes into the existing map: merge
        for name, item in value:
            if type(item) is not str:
                shown = "a non-string value" if secret else _show(item)
                raise InvalidJob(f"{path}: values must be strings, got {shown} for {_show(name)}")
            env[name] = item
        return env

    return decode


def _d_stats(value: Any, old: Any, path: str) -> Any:
    if value is None or type(value) is list:
        return None  # ignored: runs live in the store
    raise _wrong(path, "an array of job stats or null", value)


def _d_struct(fields: dict[str, tuple[str, Callable[[Any, Any, str], Any]]], label: str):
    """A decoder for a nested Go struct; the result is a dict of our field names."""
    exact = {wire: (attr, dec, f"{label}.{wire}") for wire, (attr, dec) in fields.items()}
    folded = {_fold(wire): spec for wire, spec in exact.items()}

    def decode(value: Any, old: Any, path: str) -> Any:
        if value is None:
            return old
        if type(value) is not _Obj:
            raise _wrong(path, "an object or null", value)
        vals = dict(old) if old else {}  # Go decodes into the existing struct: merge
        for key, item in value:
            spec = exact.get(key) or folded.get(_fold(key))
            if spec is not None:
                attr, dec, sub = spec
                new = dec(item, vals.get(attr), sub)
                if new is None:
                    vals.pop(attr, None)  # back to the default
                else:
                    vals[attr] = new
        return vals

    return decode


_METADATA = _d_struct(
    {
        "success_count": ("success_count", _d_uint),
        "last_success": ("last_success", _d_time),
        "error_count": ("error_count", _d_uint),
        "last_error": ("last_error", _d_time),
        "last_attempted_run": ("last_attempted_run", _d_time),
        "number_of_finished_runs": ("number_of_finished_runs", _d_uint),
    },
    "metadata",
)

_REMOTE = _d_struct(
    {
        "url": ("url", _d_str),
        "method": ("method", _d_str),
        "body": ("body", _d_str),
        "headers": ("headers", _d_headers),
        "timeout": ("timeout", _d_int),
        "expected_response_codes": ("expected_response_codes", _d_ints),
    },
    "remote_properties",
)

# wire key -> (Job attribute or a "-" name for decoded-then-dropped fields, decoder)
_JOB_FIELDS: dict[str, tuple[str, Callable[[Any, Any, str], Any]]] = {
    "name": ("name", _d_str),
    "id": ("-id", _d_str),
    "command": ("command", _d_str),
    "owner": ("owner", _d_str),
    "disabled": ("disabled", _d_bool),
    "dependent_jobs": ("-dependent_jobs", _d_strs),
    "parent_jobs": ("parent_jobs", _d_strs),
    "on_failure_job": ("on_failure_job", _d_str),
    "schedule": ("schedule", _d_str),
    "retries": ("retries", _d_uint),
    "epsilon": ("epsilon", _d_str),
    "next_run_at": ("-next_run_at", _d_time),
    "TemplateDelimiters": ("template_delimiters", _d_str),
    "resume_at_next_scheduled_time": ("resume_at_next_scheduled_time", _d_bool),
    "metadata": ("metadata", _METADATA),
    "type": ("type", _d_type),
    "remote_properties": ("remote_properties", _REMOTE),
    "stats": ("-stats", _d_stats),
    "is_done": ("-is_done", _d_bool),
    # kalad's own fields (not Kala's): the run's extra environment, secret or not.
    "env": ("env", _d_env(False)),
    "secret_env": ("secret_env", _d_env(True)),
}
_JOB_EXACT = {wire: (attr, dec, wire) for wire, (attr, dec) in _JOB_FIELDS.items()}
_JOB_FOLDED = {_fold(wire): spec for wire, spec in _JOB_EXACT.items()}

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _fix_surrogates(value: Any) -> Any:
    """Replace lone surrogates in every string (keys included) by U+FFFD, as Go does."""
    if type(value) is str:
        return _SURROGATE.sub("\ufffd", value)
    if type(value) is _Obj:
        return _Obj((_fix_surrogates(k), _fix_surrogates(v)) for k, v in value)
    if type(value) is list:
        return [_fix_surrogates(v) for v in value]
    return value


def _decode_body(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJob(
            f"body: not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidJob(
            f"body: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise InvalidJob("body: invalid JSON: nested too deeply") from None
    except InvalidJob:
        raise
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InvalidJob(f"body: invalid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(body) is not None:
        value = _fix_surrogates(value)
    return value


def parse_job(body: bytes, *, job_id: str, now: datetime, default_owner: str = "") -> Job:
    """Decode a create request's body into a ``Job`` with id ``job_id`` created at ``now``.

    Only decoding and type checks happen here (see the module docstring for the
    rules); business rules (name and command required, schedule syntax, parents)
    belong to ``kalad.core.job.check_definition`` and the service. ``id``,
    ``next_run_at``, ``stats``, ``is_done`` and ``dependent_jobs`` are type-checked
    and ignored: kalad derives ``dependent_jobs`` from the children's
    ``parent_jobs``. An empty ``owner`` becomes ``default_owner``.
    """
    obj = _decode_body(body)
    if type(obj) is not _Obj:
        raise InvalidJob(f"body: expected a JSON object, got {_show(obj)}")
    vals: dict[str, Any] = {}
    for key, value in obj:
        spec = _JOB_EXACT.get(key) or _JOB_FOLDED.get(_fold(key))
        if spec is not None:
            attr, dec, path = spec
            vals[attr] = dec(value, vals.get(attr), path)

    kwargs = {attr: v for attr, v in vals.items() if v is not None and attr[0] != "-"}
    metadata = kwargs.get("metadata")
    if metadata is not None:
        kwargs["metadata"] = Metadata(**metadata) if metadata else NO_METADATA
    remote = kwargs.get("remote_properties")
    if remote is not None:
        headers = remote.get("headers")
        if headers is not None:
            remote["headers"] = MappingProxyType(headers)
        kwargs["remote_properties"] = RemoteProperties(**remote) if remote else NO_REMOTE
    for attr in ("env", "secret_env"):
        if attr in kwargs:
            kwargs[attr] = make_env(kwargs[attr])
    if default_owner and not kwargs.get("owner"):
        kwargs["owner"] = default_owner
    kwargs.setdefault("name", "")
    return Job(id=job_id, created_at=now, **kwargs)


# ------------------------------------------------------------------------ encoding


def run_to_stat(run: Run) -> dict[str, Any]:
    """One Kala JobStat, with Kala's snake_case keys and then the README's CamelCase ones."""
    ran_at = format_time(run.started_at)
    retries = run.number_of_retries
    success = run.success
    duration = run.duration_ns
    return {
        "job_id": run.job_id,
        "ran_at": ran_at,
        "number_of_retries": retries,
        "success": success,
        "execution_duration": duration,
        "JobId": run.job_id,
        "RanAt": ran_at,
        "NumberOfRetries": retries,
        "Success": success,
        "ExecutionDuration": duration,
    }


def _stats(runs: Sequence[Run] | None) -> list[dict[str, Any]] | None:
    if not runs:
        return None
    out = [run_to_stat(r) for r in runs if r.status.executed]
    return out or None  # Kala emits null, not [], for a job that never ran


def job_to_wire(job: Job, stats: Sequence[Run] | None) -> dict[str, Any]:
    """Kala's Job object, keys in Kala's order; ``stats`` lists the executed runs given."""
    md = job.metadata
    rp = job.remote_properties
    headers = rp.headers
    codes = rp.expected_response_codes
    wire = {
        "name": job.name,
        "id": job.id,
        "command": job.command,
        "owner": job.owner,
        "disabled": job.disabled,
        "dependent_jobs": list(job.dependent_jobs) if job.dependent_jobs else None,
        "parent_jobs": list(job.parent_jobs) if job.parent_jobs else None,
        "on_failure_job": job.on_failure_job,
        "schedule": job.schedule,
        "retries": job.retries,
        "epsilon": job.epsilon,
        "next_run_at": format_time(job.next_run_at),
        "TemplateDelimiters": job.template_delimiters,
        "resume_at_next_scheduled_time": job.resume_at_next_scheduled_time,
        "metadata": {
            "success_count": md.success_count,
            "last_success": format_time(md.last_success),
            "error_count": md.error_count,
            "last_error": format_time(md.last_error),
            "last_attempted_run": format_time(md.last_attempted_run),
            "number_of_finished_runs": md.number_of_finished_runs,
        },
        "type": int(job.type),
        "remote_properties": {
            "url": rp.url,
            "method": rp.method,
            "body": rp.body,
            "headers": (
                None if headers is None else {k: list(headers[k]) for k in sorted(headers)}
            ),
            "timeout": rp.timeout,
            "expected_response_codes": None if codes is None else list(codes),
        },
        "stats": _stats(stats),
        "is_done": job.is_done,
    }
    # kalad's own fields, after Kala's and only when set, so Kala's jobs look as in Kala.
    if job.env:
        wire["env"] = dict(job.env)
    if job.secret_env:
        wire["secret_env"] = {name: SECRET_MASK for name, _ in job.secret_env}
    return wire


def run_to_wire(run: Run) -> dict[str, Any]:
    """kalad's own full run record (``/api/v1/job/{id}/runs/``); absent times are null."""
    scheduled = run.scheduled_at
    return {
        "id": run.id,
        "job_id": run.job_id,
        "trigger": run.trigger.value,
        "status": run.status.value,
        "success": run.success,
        "scheduled_at": None if scheduled is None else format_time(scheduled),
        "started_at": format_time(run.started_at),
        "ended_at": format_time(run.ended_at),
        "attempts": run.attempts,
        "duration_ns": run.duration_ns,
        "exit_status": run.exit_status,
        "message": run.message,
        "missed": run.missed,
        "output": run.output,
    }


def stats_to_wire(stats: AppStats) -> dict[str, Any]:
    """``GET /stats/``: Kala's snake_case keys in Kala's order, then the README's CamelCase."""
    next_run_at = format_time(stats.next_run_at)
    last_attempted = format_time(stats.last_attempted_run)
    created = format_time(stats.created)
    return {
        "Stats": {
            "active_jobs": stats.active_jobs,
            "disabled_jobs": stats.disabled_jobs,
            "jobs": stats.jobs,
            "error_count": stats.error_count,
            "success_count": stats.success_count,
            "next_run_at": next_run_at,
            "last_attempted_run": last_attempted,
            "created": created,
            "ActiveJobs": stats.active_jobs,
            "DisabledJobs": stats.disabled_jobs,
            "Jobs": stats.jobs,
            "ErrorCount": stats.error_count,
            "SuccessCount": stats.success_count,
            "NextRunAt": next_run_at,
            "LastAttemptedRun": last_attempted,
            "CreatedAt": created,
        }
    }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON plus ``\\n``, like Go's ``json.Encoder`` (HTML characters escaped).

    The escapes are applied to the encoded text: ``<``, ``>``, ``&``, U+2028 and
    U+2029 can only occur inside JSON strings there, so this is exact. A lone
    surrogate (e.g. in undecodable command output) is written as U+FFFD.
    """
    text = _ENCODER.encode(obj)
    for char, escape in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
    return data + b"\n"
