"""Every setting of kalad, declared once in ``SETTINGS``.

The table drives the command-line flags and the ``Config`` value; each parser is a
plain function that raises ``ValueError`` with a message a user can act on, and
every error is reported, not just the first.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Callable, Sequence


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (yes/no, true/false, on/off, 1/0)")


def parse_port(text: str) -> tuple[str | None, int]:
    """Kala's ``--port``: ``8000``, ``:8000``, ``host:8000`` or ``[::1]:8000``."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not a port or host:port") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    return host or None, number


def parse_int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise ValueError(f"{value} is below the minimum {minimum}")
        return value

    return parse


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ValueError(f"{value} is outside 0-3600 seconds")
    return value


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def parse_text(text: str) -> str:
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    section: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    flags: tuple[str, ...] = ()
    metavar: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("interface", "api", "127.0.0.1", parse_text,
            "address to listen on (Kala's --interface)", ("-i", "--interface"), "ADDR"),
    Setting("port", "api", (None, 8000), parse_port,
            "port, or host:port, to listen on (Kala's --port)", ("-p", "--port"), "PORT"),
    Setting("threads", "api", 8, parse_int(1),
            "worker threads serving API requests", ("--api-threads",), "N"),
    Setting("jobdb", "store", "lmdb", parse_choice("lmdb", "memory"),
            "job store backend: lmdb (durable) or memory (nothing survives a restart)",
            ("--jobdb",), "KIND"),
    Setting("lmdb_path", "store", "/var/lib/kalad", parse_text,
            "directory of the LMDB job store", ("--lmdb-path",), "DIR"),
    Setting("default_owner", "jobs", "", parse_text,
            "owner given to jobs created without one", ("-o", "--default-owner"), "OWNER"),
    Setting("jobstat_ttl", "runs", -1, parse_int(-1),
            "minutes to keep run records (-1: keep, bounded by keep_runs)",
            ("--jobstat-ttl",), "MINUTES"),
    Setting("keep_runs", "runs", 1000, parse_int(1),
            "run records kept per job (the oldest are dropped)", ("--keep-runs",), "N"),
    Setting("stats_per_job", "runs", 100, parse_int(0),
            "newest runs shown in a job's 'stats' and in /job/stats/",
            ("--stats-per-job",), "N"),
    Setting("stop_grace", "daemon", 10.0, parse_seconds,
            "seconds running jobs get after SIGTERM at shutdown before SIGKILL",
            ("--stop-grace",), "SECONDS"),
    Setting("verbose", "log", False, parse_bool,
            "log at DEBUG level", ("-v", "--verbose"), None),
)

Config = make_dataclass(
    "Config",
    [(s.name, Any, field(default=s.default)) for s in SETTINGS],
    frozen=True,
)
Config.__doc__ = "Every setting's value; built only through ``SETTINGS``."


def listen_address(config: Config) -> tuple[str, int]:
    """Where to listen: a host given in ``--port`` wins over ``--interface``."""
    host, port = config.port
    return host or config.interface, port


def add_flags(parser: argparse.ArgumentParser) -> None:
    for s in SETTINGS:
        if not s.flags:
            continue
        if s.parse is parse_bool:
            parser.add_argument(*s.flags, dest=s.name, action="store_const", const="yes",
                                default=argparse.SUPPRESS, help=s.help)
        else:
            parser.add_argument(*s.flags, dest=s.name, metavar=s.metavar,
                                default=argparse.SUPPRESS,
                                help=f"{s.help} (default: {format_default(s)})")


def format_default(s: Setting) -> str:
    if s.name == "port":
        return "8000"
    if isinstance(s.default, bool):
        return "yes" if s.default else "no"
    return str(s.default) if s.default != "" else '""'


def from_flags(values: dict[str, str]) -> tuple[Config, list[str]]:
    """Build the config from raw flag values; return it with every error found."""
    chosen: dict[str, Any] = {}
    errors: list[str] = []
    by_name = {s.name: s for s in SETTINGS}
    for name, raw in values.items():
        s = by_name.get(name)
        if s is None:
            continue
        try:
            chosen[name] = s.parse(raw)
        except ValueError as exc:
            errors.append(f"{'/'.join(s.flags)}: {exc}")
    return Config(**chosen), errors


def setting_names() -> Sequence[str]:
    return [s.name for s in SETTINGS]
