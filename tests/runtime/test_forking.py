"""The pid file of --daemon mode: written, locked, removed, stale ones replaced."""

from __future__ import annotations

import os
import subprocess

import pytest

from kalad.runtime.forking import PidFile, PidFileError


def test_written_locked_and_removed(tmp_path):
    path = tmp_path / "run" / "kalad.pid"
    with PidFile(str(path)) as held:
        assert path.read_text() == f"{os.getpid()}\n"
        assert held.stale is None
        with pytest.raises(PidFileError, match="is locked"):
            PidFile(str(path)).__enter__()
    assert not path.exists()


def test_stale_file_is_replaced(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "kalad.pid"
    path.write_text(f"{dead.pid}\n")
    with PidFile(str(path)) as held:
        assert held.stale == str(dead.pid)
        assert path.read_text() == f"{os.getpid()}\n"


def test_garbage_is_stale(tmp_path):
    path = tmp_path / "kalad.pid"
    path.write_text("not a pid")
    with PidFile(str(path)) as held:
        assert held.stale == "not a pid"


def test_a_live_process_named_in_an_unlocked_file_refuses(tmp_path):
    path = tmp_path / "kalad.pid"
    path.write_text("1\n")  # init is alive
    with pytest.raises(PidFileError, match="already running as pid 1"):
        PidFile(str(path)).__enter__()
    assert path.read_text() == "1\n"
