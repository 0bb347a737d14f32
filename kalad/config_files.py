"""Reading ``kalad.conf`` and its drop-ins: INI syntax with line numbers, every error at once.

It knows nothing of the settings themselves (``kalad.config`` checks names and
values); it finds the files, splits them into ``[section] key = value`` entries
that remember their file and line, and reports every syntax problem it meets
rather than stopping at the first. The syntax is ``configparser``'s with
interpolation off and strict duplicates: ``#`` and ``;`` start comment lines,
``=`` or ``:`` separates a key from its value, keys are case-insensitive, and a
``%`` is just a character. No continuation lines and no inline comments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_FILE = "/etc/kalad/kalad.conf"


@dataclass(frozen=True, slots=True)
class Problem:
    """One error, printed as ``FILE:LINE: [section] key: message``.

    ``source`` is a file or the flag that was given; ``in_file`` tells a
    configuration error (exit 78) from a bad flag (a usage error, exit 2).
    """

    source: str
    message: str
    section: str | None = None
    key: str | None = None
    line: int = 0
    in_file: bool = True

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        if self.section is None:
            return f"{where}: {self.message}"
        name = f"[{self.section}] {self.key}" if self.key else f"[{self.section}]"
        return f"{where}: {name}: {self.message}"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    line: int
    section: str
    key: str
    value: str


@dataclass
class IniFile:
    path: str
    headers: list[tuple[str, int]] = field(default_factory=list)  # (section, line)
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    readable: bool = True


def discover(main: str, required: bool) -> tuple[list[str], list[Problem]]:
    """The files to read, in order: ``main``, then ``<main>.d/*.conf`` by name.

    A missing ``main`` is fine unless it was named on the command line
    (``required``); a missing drop-in directory is always fine. Hidden files and
    names not ending in ``.conf`` are skipped, so editors' backups are not read.
    """
    paths: list[str] = []
    problems: list[Problem] = []
    if os.path.isdir(main):
        problems.append(Problem(main, "is a directory"))
    elif os.path.exists(main):  # /dev/null included: "--config /dev/null" means no settings
        paths.append(main)
    elif required:
        problems.append(Problem(main, "no such file"))
    dropins = main + ".d"
    if os.path.isdir(dropins):
        try:
            names = sorted(os.listdir(dropins))
        except OSError as exc:
            problems.append(Problem(dropins, f"cannot list: {exc.strerror}"))
            names = []
        for name in names:
            path = os.path.join(dropins, name)
            if name.endswith(".conf") and not name.startswith(".") and os.path.isfile(path):
                paths.append(path)
    elif os.path.exists(dropins):
        problems.append(Problem(dropins, "not a directory"))
    return paths, problems


def read(path: str) -> IniFile:
    """Every entry of one file and every syntax error in it, with its line."""
    ini = IniFile(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        ini.problems.append(Problem(path, f"cannot read: {exc.strerror}"))
        ini.readable = False
        return ini
    except UnicodeDecodeError as exc:
        ini.problems.append(Problem(path, f"not UTF-8 text (byte {exc.start})"))
        ini.readable = False
        return ini
    section: str | None = None
    lost = False  # under a broken '[...' line: its keys have no section to check against
    first_seen: dict[tuple[str, str], int] = {}
    number = 0

    def bad(message: str, key: str | None = None) -> None:  # at the current line
        ini.problems.append(Problem(path, message, section if key else None, key, number))

    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or not line[1:-1].strip():
                bad(f"{line!r} is not a '[section]' line")
                section, lost = None, True
            else:
                section, lost = line[1:-1].strip(), False
                ini.headers.append((section, number))
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            bad(f"{line!r} is not 'key = value'")
            continue
        key, value = line[:cut].strip().lower(), line[cut + 1:].strip()
        if not key:
            bad(f"{line!r} has no key before {line[cut]!r}")
        elif lost:
            continue
        elif section is None:
            bad(f"'{key}' is outside any [section]")
        elif (section, key) in first_seen:
            bad(f"duplicate setting (first set at line {first_seen[section, key]})", key)
        else:
            first_seen[section, key] = number
            ini.entries.append(Entry(path, number, section, key, value))
    return ini
