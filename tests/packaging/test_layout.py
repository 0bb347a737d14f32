"""Packaging rules: the import direction between layers, man page lint, flags documented."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from kalad.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kalad"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    base = PACKAGE / folder if folder else PACKAGE
    return sorted(base.rglob("*.py"))


def forbidden(names: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_is_pure(path):
    allowed_third_party = {"isodate"}
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top in allowed_third_party or top == "kalad" or top in __import__("sys").stdlib_module_names, name
    assert not forbidden(imports_of(path), (
        "kalad.store", "kalad.api", "kalad.runtime", "kalad.service", "threading",
        "socket", "subprocess", "time", "os",
    ))


@pytest.mark.parametrize("path", modules("store"), ids=lambda p: p.name)
def test_store_does_not_reach_up(path):
    assert not forbidden(imports_of(path), ("kalad.api", "kalad.service", "kalad.runtime"))


@pytest.mark.parametrize("path", modules("api"), ids=lambda p: p.name)
def test_api_does_not_touch_store_or_runtime(path):
    assert not forbidden(imports_of(path), ("kalad.store", "kalad.runtime"))


def test_service_talks_to_ports_not_backends():
    assert not forbidden(imports_of(PACKAGE / "service.py"),
                         ("kalad.store.lmdb", "kalad.store.memory", "kalad.runtime", "kalad.api"))


def test_only_the_supervisor_starts_processes():
    starters = ("subprocess", "multiprocessing")
    for path in modules(""):
        if path.name in ("supervisor.py", "spawn.py"):  # spawn.py: the supervisor's posix_spawn
            continue
        source = path.read_text()
        assert not forbidden(imports_of(path), starters), path
        for call in ("posix_spawn", "os.fork", "os.exec"):
            assert call not in source, f"{path}: {call}"


@pytest.mark.parametrize("page", sorted((ROOT / "man").glob("*.[0-9]")), ids=lambda p: p.name)
def test_man_pages_lint_clean(page):
    proc = subprocess.run(["groff", "-ww", "-man", "-z", str(page)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_every_flag_is_in_the_man_page():
    page = (ROOT / "man" / "kalad.8").read_text().replace("\\-", "-")
    for s in SETTINGS:
        for flag in s.flags:
            assert flag in page, flag
