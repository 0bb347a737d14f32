"""The stored form of jobs and runs: compact, versioned JSON records of our own.

This is not Kala's wire format (that lives in ``api/kala_json.py``), so the API and
the storage format can change independently. Every record carries ``"v"``; keys are
short and stable, and fields at their default are left out (and restored on decode,
sharing ``NO_METADATA``/``NO_REMOTE``), so a million jobs stay small on disk and
quick to load. Records are read and written with orjson (UTF-8 JSON), in a third of
the time json takes: seconds, when a million jobs load at start-up, and a run record
and its job are written on every run. Datetimes are integer microseconds
since the Unix epoch in UTC, enums are stored by value, tuples as lists, headers as
``{name: [values]}``. One table per type below maps each short key to its field, so
encoder and decoder cannot drift.
"""

from __future__ import annotations

import functools
import json
import sys

import orjson
from dataclasses import MISSING, fields
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Generic, Mapping, NamedTuple, TypeVar

from kalad.core.errors import StoreError
from kalad.core.job import NO_HEADERS, Job, JobType, Metadata, RemoteProperties
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.core.slotted import slot_setters

VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_T = TypeVar("_T")


class _Malformed(ValueError):
    """A field is missing or has the wrong type; reported as ``StoreError``."""


def micros(moment: datetime) -> int:
    """``moment`` as integer microseconds since the epoch; it must be timezone-aware."""
    if moment.tzinfo is None:
        raise StoreError(f"cannot store naive datetime {moment.isoformat()}: it needs a timezone")
    return (moment - _EPOCH) // _MICROSECOND


def encode_job(job: Job) -> bytes:
    """The stored record of ``job``."""
    return _JOB.encode(job)


def decode_job(data: bytes) -> Job:
    """The job stored as ``data``; ``StoreError`` if it is malformed or from a newer kalad."""
    return _JOB.decode_bytes(data, "job")


def encode_run(run: Run) -> bytes:
    """The stored record of ``run``."""
    return _RUN.encode(run)


def decode_run(data: bytes) -> Run:
    """The run stored as ``data``; ``StoreError`` if it is malformed or from a newer kalad."""
    return _RUN.decode_bytes(data, "run")


class _Codec(NamedTuple):
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _typed(kind: type, what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not kind:  # exact: a bool is not an int here
            raise _Malformed(f"must be {what}, not {type(value).__name__}")
        return value

    check.kind = kind  # type: ignore[attr-defined]  # _reader inlines the check
    return check


_str = _typed(str, "a string")
_int = _typed(int, "an integer")
_list = _typed(list, "a list")
_dict = _typed(dict, "an object")


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(_str(item) for item in _list(value))


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(_int(item) for item in _list(value))


def _moment(value: Any) -> datetime:
    return _EPOCH + _MICROSECOND * _int(value)  # twice as fast as timedelta(microseconds=)


def _maybe_moment(value: Any) -> datetime | None:
    return None if value is None else _moment(value)


def _encode_headers(headers: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {name: list(values) for name, values in headers.items()}


def _decode_env(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, _str(text)) for name, text in _dict(value).items()))


def _decode_headers(value: Any) -> Mapping[str, tuple[str, ...]]:
    record = _dict(value)
    if not record:
        return NO_HEADERS
    return MappingProxyType({name: _strings(values) for name, values in record.items()})


def _filler(encoders: list[tuple[str, str, Callable[[Any], Any], Any]]
            ) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """``fill`` for (field, key, encoder, default) in code generated once: run records
    are encoded on every run, and a loop over the fields took twice as long."""
    scope: dict[str, Any] = {}
    lines = ["def fill(obj, record):"]
    for index, (name, key, encode, default) in enumerate(encoders):
        scope[f"encode{index}"], scope[f"default{index}"] = encode, default
        value = f"obj.{name}" if encode is _same else f"encode{index}(obj.{name})"
        if default is MISSING:
            lines.append(f"    record[{key!r}] = {value}")
        else:
            lines += [f"    if not (obj.{name} is default{index} or obj.{name} == default{index}):",
                      f"        record[{key!r}] = {value}"]
    lines.append("    return record")
    exec("\n".join(lines), scope)
    return scope["fill"]


def _reader(cls: type[_T], decoders: dict[str, tuple[str, Callable[[Any], Any]]]
            ) -> Callable[[Any], _T]:
    """``decode(record)`` for ``cls``, its field ``name`` read from ``decoders[name]``:
    (key, decoder); absent keys take the field's default, unknown keys are ignored.

    Generated once, straight-line, setting the slots itself and checking the plain
    types inline: a million jobs are decoded at start-up, and a loop over the
    record's keys into a list of values, then building from it, took 10.8 µs a
    job against 9.8.
    """
    _, scope = slot_setters(cls)
    scope.update(ABSENT=MISSING, Malformed=_Malformed, record_type=_dict)
    required = [decoders[f.name][0] for f in fields(cls) if f.default is MISSING]
    lines = ["def decode(record):", "    get = record_type(record).get", "    obj = new(cls)"]
    for index, f in enumerate(fields(cls)):
        if f.name not in decoders:
            raise TypeError(f"{cls.__name__}.{f.name} has no key in the record")
        key, decoder = decoders[f.name]
        scope[f"decode{index}"], scope[f"default{index}"] = decoder, f.default
        scope[f"field{index}"] = f"field {key!r}: "
        lines += [f"    value = get({key!r}, ABSENT)",
                  "    if value is ABSENT:",
                  f"        set{index}(obj, default{index})" if f.default is not MISSING else
                  "        missing(record)"]
        kind = getattr(decoder, "kind", None)
        if kind is not None:  # a plain type check, inlined: most fields are one
            scope[f"kind{index}"] = kind
            lines += [f"    elif type(value) is kind{index}:",
                      f"        set{index}(obj, value)"]
        lines += ["    else:",
                  "        try:",
                  f"            set{index}(obj, decode{index}(value))",
                  "        except (ValueError, OverflowError) as exc:  # Malformed included",
                  f"            raise Malformed(field{index} + str(exc)) from None"]
    lines.append("    return obj")

    def missing(record: dict[str, Any]) -> None:
        absent = [repr(key) for key in required if key not in record]
        raise _Malformed(f"missing field {', '.join(absent)}")

    scope["missing"] = missing
    exec("\n".join(lines), scope)
    return scope["decode"]


class _Layout(Generic[_T]):
    """How one dataclass maps to a record: each field's short key, codec and default."""

    def __init__(self, cls: type[_T], keys: dict[str, tuple[str, _Codec]]) -> None:
        defaults = {f.name: f.default for f in fields(cls)}
        self._fill = _filler([(name, key, codec.encode, defaults[name])
                              for key, (name, codec) in keys.items()])
        self.decode = _reader(cls, {name: (key, codec.decode) for key, (name, codec) in keys.items()})

    def fill(self, obj: _T, record: dict[str, Any]) -> dict[str, Any]:
        """Add the fields of ``obj`` that differ from their default to ``record``."""
        return self._fill(obj, record)

    def encode(self, obj: _T) -> bytes:
        record = self._fill(obj, {"v": VERSION})
        try:
            return orjson.dumps(record)
        except orjson.JSONEncodeError:  # a lone surrogate, an integer past 64 bits
            return _dumps(record).encode("ascii")

    def decode_bytes(self, data: bytes, kind: str) -> _T:
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError as exc:  # also bad UTF-8
            try:
                record = json.loads(data)  # a lone surrogate, which orjson refuses
            except ValueError:
                raise StoreError(f"malformed {kind} record: not JSON ({exc})") from None
        if type(record) is not dict:
            raise StoreError(f"malformed {kind} record: not a JSON object")
        version = record.get("v")
        if type(version) is not int or version < 1:
            raise StoreError(f"malformed {kind} record: no valid format version 'v'")
        if version > VERSION:
            raise StoreError(
                f"{kind} record has format version {version}, this kalad reads up to {VERSION}"
            )
        try:
            return self.decode(record)
        except _Malformed as exc:
            raise StoreError(f"malformed {kind} record: {exc}") from None


def _same(value: Any) -> Any:
    return value


_TEXT = _Codec(_same, _str)
# Text that many jobs share (the same schedule, command or owner): one copy in memory.
_SHARED_TEXT = _Codec(_same, lambda value: sys.intern(_str(value)))
_INT = _Codec(_same, _int)
_FLAG = _Codec(_same, _typed(bool, "true or false"))
_TEXTS = _Codec(list, _strings)
_INTS = _Codec(list, _ints)
_MOMENT = _Codec(micros, _moment)
_MAYBE_MOMENT = _Codec(micros, _maybe_moment)
# Jobs on one schedule share their next run time: one object for all of them, built once.
_SHARED_MOMENT = _Codec(micros, functools.lru_cache(maxsize=4096)(_maybe_moment))

_METADATA = _Layout(
    Metadata,
    {
        "sc": ("success_count", _INT),
        "ls": ("last_success", _MAYBE_MOMENT),
        "ec": ("error_count", _INT),
        "le": ("last_error", _MAYBE_MOMENT),
        "la": ("last_attempted_run", _MAYBE_MOMENT),
        "nf": ("number_of_finished_runs", _INT),
    },
)

# None and empty differ for headers and codes: only None (the default) is left out.
_REMOTE = _Layout(
    RemoteProperties,
    {
        "u": ("url", _TEXT),
        "m": ("method", _TEXT),
        "b": ("body", _TEXT),
        "h": ("headers", _Codec(_encode_headers, _decode_headers)),
        "to": ("timeout", _INT),
        "x": ("expected_response_codes", _INTS),
    },
)

_JOB = _Layout(
    Job,
    {
        "id": ("id", _TEXT),
        "n": ("name", _TEXT),
        "c": ("created_at", _MOMENT),
        "cmd": ("command", _SHARED_TEXT),
        "o": ("owner", _SHARED_TEXT),
        "dis": ("disabled", _FLAG),
        "dep": ("dependent_jobs", _TEXTS),
        "par": ("parent_jobs", _TEXTS),
        "of": ("on_failure_job", _SHARED_TEXT),
        "s": ("schedule", _SHARED_TEXT),
        "r": ("retries", _INT),
        "eps": ("epsilon", _SHARED_TEXT),
        "nx": ("next_run_at", _SHARED_MOMENT),
        "td": ("template_delimiters", _SHARED_TEXT),
        "rs": ("resume_at_next_scheduled_time", _FLAG),
        "m": ("metadata", _Codec(lambda m: _METADATA.fill(m, {}), _METADATA.decode)),
        "t": ("type", _Codec(int, lambda value: JobType(_int(value)))),
        "rp": ("remote_properties", _Codec(lambda r: _REMOTE.fill(r, {}), _REMOTE.decode)),
        "done": ("is_done", _FLAG),
        # Added after format 1 was fixed: optional, so older records load unchanged.
        "env": ("env", _Codec(dict, _decode_env)),
        "senv": ("secret_env", _Codec(dict, _decode_env)),
    },
)

_RUN = _Layout(
    Run,
    {
        "id": ("id", _TEXT),
        "j": ("job_id", _TEXT),
        "tr": ("trigger", _Codec(lambda t: t.value, lambda value: Trigger(_str(value)))),
        "st": ("status", _Codec(lambda s: s.value, lambda value: RunStatus(_str(value)))),
        "s": ("started_at", _MOMENT),
        "e": ("ended_at", _MOMENT),
        "sa": ("scheduled_at", _MAYBE_MOMENT),
        "a": ("attempts", _INT),
        "d": ("duration_ns", _INT),
        "x": ("exit_status", _INT),
        "o": ("output", _TEXT),
        "msg": ("message", _TEXT),
        "mi": ("missed", _INT),
    },
)
