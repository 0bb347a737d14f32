"""Every setting of kalad, declared once in ``SETTINGS``.

The table drives everything a setting shows up in: the command-line flags, the
checks on ``kalad.conf`` and its drop-ins, the ``Config`` value, ``kalad
print-config`` and the sample ``etc/kalad.conf`` (``python -m kalad.config``
prints it). Each parser is a plain function that raises ``ValueError`` with a
message a user can act on, and every error is reported, not just the first.
Precedence, lowest first: default, main file, drop-ins by name, flags.
"""

from __future__ import annotations

import argparse
import difflib
import textwrap
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Callable, Mapping, Sequence

from kalad import config_files
from kalad.config_files import DEFAULT_FILE, Problem

EX_USAGE = 2
EX_CONFIG = 78


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


def parse_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise ValueError(f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{value} is above the maximum {maximum}")
        return value

    return parse


def parse_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of requests per second") from None
    if not 0 <= value <= 1_000_000:
        raise ValueError(f"{value} is outside 0-1000000 requests per second")
    return value


def parse_timeout(text: str) -> float:
    value = parse_seconds(text)
    if value <= 0:
        raise ValueError(f"{value} must be above 0 seconds")
    return value


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
    if "\n" in text or "\r" in text:
        raise ValueError("must be a single line")
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
    Setting("tokens_dir", "api", "/etc/kalad/tokens.d", parse_text,
            "directory of API token files, *.token (see TOKENS in kalad(8))",
            ("--tokens-dir",), "DIR"),
    Setting("allowed_hosts", "api", "", parse_text,
            "more Host names the API answers to, comma-separated (* for any)",
            ("--allowed-hosts",), "NAMES"),
    Setting("rate_limit", "api", 20.0, parse_rate,
            "requests per second per token (or address) when tokens are set; 0: off",
            ("--rate-limit",), "N"),
    Setting("rate_burst", "api", 100, parse_int(1),
            "requests a token (or address) may make at once above rate_limit",
            ("--rate-burst",), "N"),
    Setting("max_body", "api", 1024 * 1024, parse_int(1024, 64 * 1024 * 1024),
            "largest request body in bytes (larger: 413)", ("--max-body",), "BYTES"),
    Setting("max_connections", "api", 512, parse_int(1),
            "most API connections open at once; more wait to be accepted",
            ("--max-connections",), "N"),
    Setting("idle_timeout", "api", 60.0, parse_timeout,
            "seconds a connection may stay silent, mid-request or between requests",
            ("--idle-timeout",), "SECONDS"),
    Setting("jobdb", "store", "lmdb",
            parse_choice("lmdb", "sqlite", "postgres", "mysql", "mariadb", "redis", "memory"),
            "job store: lmdb, sqlite, postgres, mysql, mariadb, redis, memory",
            ("--jobdb",), "KIND"),
    Setting("jobdb_address", "store", "", parse_text,
            "database address: host[:port]/db, a sqlite file, or a URL",
            ("--jobdb-address",), "ADDRESS"),
    Setting("jobdb_username", "store", "", parse_text,
            "database user (overrides the URL's)", ("--jobdb-username",), "USER"),
    Setting("jobdb_password", "store", "", parse_text,
            "database password (overrides the URL's; keep this file mode 0600)",
            ("--jobdb-password",), "PASSWORD"),
    Setting("jobdb_prefix", "store", "kalad_", parse_text,
            "prefix of the store's table / key names", ("--jobdb-prefix",), "PREFIX"),
    Setting("lmdb_path", "store", "/var/lib/kalad", parse_text,
            "directory of the LMDB job store", ("--lmdb-path",), "DIR"),
    Setting("default_owner", "jobs", "", parse_text,
            "owner given to jobs created without one", ("-o", "--default-owner"), "OWNER"),
    Setting("max_jobs", "jobs", 1_000_000, parse_int(1),
            "most jobs the daemon holds; creating one more is refused",
            ("--max-jobs",), "N"),
    Setting("min_interval", "jobs", 1.0, parse_seconds,
            "shortest interval in seconds a new repeating schedule may have (0: any)",
            ("--min-interval",), "SECONDS"),
    Setting("max_depth", "jobs", 64, parse_int(1, 64),
            "longest chain of parent jobs above a new child job (at most 64)",
            ("--max-depth",), "N"),
    Setting("max_name", "jobs", 1024, parse_int(1, 1024),
            "longest job name in characters (at most 1024)", ("--max-name",), "N"),
    Setting("max_command", "jobs", 65536, parse_int(1, 65536),
            "longest job command in characters (at most 65536)", ("--max-command",), "N"),
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
    Setting("pidfile", "daemon", "/run/kalad/kalad.pid", parse_text,
            "file the daemon writes its process id to", ("--pidfile",), "FILE"),
    Setting("verbose", "log", False, parse_bool,
            "log at DEBUG level (overrides level)", ("-v", "--verbose"), None),
    Setting("level", "log", "info", parse_choice("debug", "info", "warning", "error"),
            "least severe log level written: debug, info, warning or error",
            ("--log-level",), "LEVEL"),
    Setting("target", "log", "auto", parse_choice("auto", "stderr", "syslog"),
            "where logs go: auto, stderr or syslog (see LOGGING in kalad(8))",
            ("--log-target",), "TARGET"),
)


SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))
_BY_KEY: dict[tuple[str, str], Setting] = {(s.section, s.name): s for s in SETTINGS}

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


def format_value(s: Setting, value: Any) -> str:
    """The text that ``s.parse`` turns back into ``value``: INI files are written with it."""
    if s.parse is parse_port:
        host, port = value
        if not host:
            return str(port)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def flag_names(s: Setting) -> str:
    return "/".join(s.flags)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per setting; a flag left out keeps the file's value."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help=f"config file (default: {DEFAULT_FILE}); drop-ins are read "
                             "from FILE.d/*.conf")
    for s in SETTINGS:
        if not s.flags:
            continue
        if s.parse is parse_bool:
            parser.add_argument(*s.flags, dest=s.name, action="store_const", const="yes",
                                default=argparse.SUPPRESS, help=s.help)
        else:
            default = format_value(s, s.default) or '""'
            parser.add_argument(*s.flags, dest=s.name, metavar=s.metavar,
                                default=argparse.SUPPRESS, help=f"{s.help} (default: {default})")


@dataclass(frozen=True)
class Loaded:
    """The effective config, where each value came from, and every error found."""

    config: Config
    origins: Mapping[str, str]  # setting name -> "default", "file:line" or "flag -p/--port"
    files: tuple[str, ...]      # the files read, in order
    problems: tuple[Problem, ...]

    @property
    def status(self) -> int:
        """0, 78 when a file is at fault, or 2 when only flags are (a usage error)."""
        if not self.problems:
            return 0
        return EX_CONFIG if any(p.in_file for p in self.problems) else EX_USAGE


def load(flags: Mapping[str, Any], config_file: str | None = None) -> Loaded:
    """Defaults, then ``config_file`` (or the default file), its drop-ins, then ``flags``.

    ``flags`` is argparse's namespace as a dict; names that are not settings are
    ignored. A missing default file is fine; a missing ``config_file`` is an error.
    """
    chosen: dict[str, Any] = {}
    origins = {s.name: "default" for s in SETTINGS}
    paths, problems = config_files.discover(config_file or DEFAULT_FILE,
                                            required=config_file is not None)
    files: list[str] = []
    for path in paths:
        ini = config_files.read(path)
        if ini.readable:
            files.append(path)
        found = ini.problems + _check_sections(ini)
        for entry in ini.entries:
            if entry.section not in SECTIONS:
                continue  # reported once, at its [section] line
            s = _BY_KEY.get((entry.section, entry.key))
            if s is None:
                found.append(Problem(path, _unknown_key(entry.section, entry.key),
                                     entry.section, entry.key, entry.line))
                continue
            try:
                chosen[s.name] = s.parse(entry.value)
                origins[s.name] = f"{path}:{entry.line}"
            except ValueError as exc:
                found.append(Problem(path, str(exc), s.section, s.name, entry.line))
        problems += sorted(found, key=lambda p: p.line)
    problems += _apply_flags(flags, chosen, origins)
    return Loaded(Config(**chosen), origins, tuple(files), tuple(problems))


def _apply_flags(flags: Mapping[str, Any], chosen: dict[str, Any],
                 origins: dict[str, str]) -> list[Problem]:
    problems = []
    for s in SETTINGS:
        if flags.get(s.name) is None:
            continue
        try:
            chosen[s.name] = s.parse(flags[s.name])
            origins[s.name] = f"flag {flag_names(s)}"
        except ValueError as exc:
            problems.append(Problem(flag_names(s), str(exc), s.section, s.name,
                                    in_file=False))
    return problems


def _check_sections(ini: config_files.IniFile) -> list[Problem]:
    problems = []
    for section, line in ini.headers:
        if section not in SECTIONS:
            problems.append(Problem(ini.path,
                                    "unknown section" + _did_you_mean(section, SECTIONS),
                                    section, line=line))
    return problems


def _unknown_key(section: str, key: str) -> str:
    """The message for a key its section lacks, naming the setting most likely meant."""
    elsewhere = [s.section for s in SETTINGS if s.name == key]
    if elsewhere:
        return f"unknown setting (it belongs in [{elsewhere[0]}])"
    here = [s.name for s in SETTINGS if s.section == section]
    hint = _did_you_mean(key, here)
    if not hint:
        near = difflib.get_close_matches(key, [s.name for s in SETTINGS], n=1)
        hint = f" (did you mean '{near[0]}' in [{_by_name(near[0]).section}]?)" if near else ""
    return "unknown setting" + hint


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    near = difflib.get_close_matches(word.lower(), candidates, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def _by_name(name: str) -> Setting:
    return next(s for s in SETTINGS if s.name == name)


def from_flags(values: dict[str, str]) -> tuple[Config, list[str]]:
    """Build the config from raw flag values alone; return it with every error found."""
    chosen: dict[str, Any] = {}
    problems = _apply_flags(values, chosen, {})
    return Config(**chosen), [str(p) for p in problems]


def print_config(loaded: Loaded) -> str:
    """The effective config as INI, every setting, each after a comment naming its source.

    Read back as a config file it gives the same ``Config``.
    """
    read = ", ".join(loaded.files) or "none"
    out = ["# kalad: effective configuration", f"# files read: {read}"]
    for section in SECTIONS:
        out += ["", f"[{section}]"]
        for s in _in_section(section):
            out.append(f"# from {loaded.origins.get(s.name, 'default')}")
            out.append(_assignment(s, getattr(loaded.config, s.name)))
    return "\n".join(out) + "\n"


SAMPLE_HEADER = f"""\
# {DEFAULT_FILE}: settings of kalad(8); see kalad.conf(5).
#
# Every setting is listed below, commented out, at its built-in default.
# Files {DEFAULT_FILE}.d/*.conf are read after this one, in lexical
# order, and command-line flags override them all. "kalad check-config" checks
# these files; "kalad print-config" shows the values in effect and their source.
#
# Generated from kalad's settings table: python -m kalad.config > etc/kalad.conf
"""


def sample_config() -> str:
    """The sample ``etc/kalad.conf``: every setting, commented out at its default."""
    out = [SAMPLE_HEADER.rstrip("\n")]
    for section in SECTIONS:
        out += ["", f"[{section}]"]
        for s in _in_section(section):
            out.append("")
            out += textwrap.wrap(s.help[0].upper() + s.help[1:] + ".", 77,
                                 initial_indent="# ", subsequent_indent="# ")
            if s.flags:
                out.append(f"# Flag: {', '.join(s.flags)}")
            out.append("#" + _assignment(s, s.default))
    return "\n".join(out) + "\n"


def _in_section(section: str) -> list[Setting]:
    return [s for s in SETTINGS if s.section == section]


def _assignment(s: Setting, value: Any) -> str:
    text = format_value(s, value)
    return f"{s.name} = {text}" if text else f"{s.name} ="


if __name__ == "__main__":
    print(sample_config(), end="")
