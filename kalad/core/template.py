"""Kala's ``TemplateDelimiters``: render a command, URL or body with the job as data.

Kala runs the text through Go's ``text/template``, a language that can call methods
and functions. kalad supports only the part that matters for idempotency keys and
the like: actions holding a field path (``{{.Name}}``, ``{{$.Metadata.ErrorCount}}``),
with Go's ``{{-`` / ``-}}`` trim markers. Everything else is refused with
``InvalidJob``. Lookups walk only the plain dicts built by ``job_fields`` (never
``getattr``), so no template can reach Python internals.

Values print as Go's ``fmt`` would, with one deviation: times are RFC 3339 in UTC
with ``Z`` (``2030-01-01T00:00:00Z``, the zero time for "never") rather than Go's
``2030-01-01 00:00:00 +0000 UTC``. Nested structs print like maps (``map[K:V ...]``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Mapping

from kalad.core.errors import InvalidJob
from kalad.core.job import Job

_SPACE = " \t\r\n"  # Go's template whitespace, for trim markers
_ZERO_TIME = "0001-01-01T00:00:00Z"
_PATH = re.compile(r"\$?(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_ONLY_PATHS = "(only field paths like .Name are allowed)"


def _time(value: datetime | None) -> str:
    if value is None:
        return _ZERO_TIME
    value = (value.replace(tzinfo=timezone.utc) if value.tzinfo is None
             else value.astimezone(timezone.utc))
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def job_fields(job: Job) -> dict[str, Any]:
    """The job under Go's field names, as plain values: str, int, bool, list, dict."""
    meta = job.metadata
    remote = job.remote_properties
    return {
        "Name": job.name,
        "Id": job.id,
        "Command": job.command,
        "Owner": job.owner,
        "Disabled": job.disabled,
        "DependentJobs": list(job.dependent_jobs),
        "ParentJobs": list(job.parent_jobs),
        "OnFailureJob": job.on_failure_job,
        "Schedule": job.schedule,
        "Retries": job.retries,
        "Epsilon": job.epsilon,
        "NextRunAt": _time(job.next_run_at),
        "TemplateDelimiters": job.template_delimiters,
        "ResumeAtNextScheduledTime": job.resume_at_next_scheduled_time,
        "Metadata": {
            "SuccessCount": meta.success_count,
            "LastSuccess": _time(meta.last_success),
            "ErrorCount": meta.error_count,
            "LastError": _time(meta.last_error),
            "LastAttemptedRun": _time(meta.last_attempted_run),
            "NumberOfFinishedRuns": meta.number_of_finished_runs,
        },
        "JobType": int(job.type),
        "RemoteProperties": {
            "Url": remote.url,
            "Method": remote.method,
            "Body": remote.body,
            "Headers": {name: list(values) for name, values in (remote.headers or {}).items()},
            "Timeout": remote.timeout,
            "ExpectedResponseCodes": list(remote.expected_response_codes or ()),
        },
        "IsDone": job.is_done,
    }


def _format(value: Any) -> str:
    """``value`` as Go's ``fmt`` prints it with ``%v``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _delimiters(delimiters: str) -> tuple[str, str]:
    parts = delimiters.split(" ")
    if len(parts) != 2 or not all(parts):
        raise InvalidJob(
            "TemplateDelimiters: must be two delimiters separated by one space, e.g. '{{ }}'"
        )
    return parts[0], parts[1]


def _lookup(action: str, source: str, fields: Mapping[str, Any]) -> str:
    if action in (".", "$"):
        raise InvalidJob(f"template: '{action}' alone is not supported in '{source}'")
    if not _PATH.fullmatch(action):
        raise InvalidJob(f"template: unsupported action '{action}' {_ONLY_PATHS}")
    value: Any = fields
    names = action.lstrip("$").split(".")[1:]
    for depth, name in enumerate(names):
        if name.startswith("_") or not isinstance(value, Mapping) or name not in value:
            path = ".".join(names[: depth + 1])
            raise InvalidJob(f"template: unknown field '{path}' in '{source}'")
        value = value[name]
    return _format(value)


def render(text: str, delimiters: str, fields: Mapping[str, Any]) -> str:
    """Replace each action in ``text`` with the field it names; raise ``InvalidJob`` if any is bad.

    ``delimiters`` is "LEFT RIGHT" (e.g. "{{ }}"); empty means no templating at all.
    """
    if not delimiters:
        return text
    left, right = _delimiters(delimiters)
    out: list[str] = []
    pos = 0
    while (start := text.find(left, pos)) >= 0:
        inner = start + len(left)
        trim_before = (text.startswith("-", inner) and inner + 1 < len(text)
                       and text[inner + 1] in _SPACE)
        end = text.find(right, inner + 2 if trim_before else inner)
        if end < 0:
            snippet = text[start:start + 40]
            raise InvalidJob(f"template: unclosed action starting at offset {start}: '{snippet}'")
        trim_after = end - inner >= 2 and text[end - 1] == "-" and text[end - 2] in _SPACE
        before = text[pos:start]
        out.append(before.rstrip(_SPACE) if trim_before else before)
        action = text[inner + 2 * trim_before:end - 2 * trim_after].strip(_SPACE)
        out.append(_lookup(action, text[start:end + len(right)], fields))
        pos = end + len(right)
        if trim_after:
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
    out.append(text[pos:])
    return "".join(out)
