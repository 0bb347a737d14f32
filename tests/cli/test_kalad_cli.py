"""``kalad check-config``, ``print-config`` and ``serve --config`` as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def kalad(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kalad.cli.kalad", *args],
                          capture_output=True, text=True, timeout=30)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


BROKEN = ("[api]\n"
          "prot = 8000\n"
          "port = 8000\n"
          "port = 8001\n"
          "[store]\n"
          "jobdb = bolt\n")


def broken_lines(path: Path) -> list[str]:
    return [
        f"kalad: {path}:2: [api] prot: unknown setting (did you mean 'port'?)",
        f"kalad: {path}:4: [api] port: duplicate setting (first set at line 3)",
        f"kalad: {path}:6: [store] jobdb: 'bolt' is not one of lmdb, sqlite, postgres, mysql, mariadb, redis, memory",
    ]


def test_check_config_ok_names_the_files_read(tmp_path):
    main = write(tmp_path / "kalad.conf", "[api]\nport = 9000\n")
    drop = write(tmp_path / "kalad.conf.d" / "10-site.conf", "[runs]\nkeep_runs = 5\n")
    proc = kalad("check-config", "--config", str(main))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"ok: {main}, {drop}\n"


def test_check_config_lists_every_error_and_exits_78(tmp_path):
    main = write(tmp_path / "kalad.conf", BROKEN)
    proc = kalad("check-config", "--config", str(main))
    assert proc.returncode == 78 and proc.stdout == ""
    assert proc.stderr.splitlines() == broken_lines(main)


def test_a_missing_config_file_is_exit_78(tmp_path):
    proc = kalad("check-config", "--config", str(tmp_path / "nope.conf"))
    assert proc.returncode == 78
    assert proc.stderr == f"kalad: {tmp_path / 'nope.conf'}: no such file\n"


def test_bad_flag_values_stay_usage_errors(tmp_path):
    proc = kalad("check-config", "--config", "/dev/null", "--keep-runs", "0")
    assert proc.returncode == 2
    assert proc.stderr == "kalad: --keep-runs: [runs] keep_runs: 0 is below the minimum 1\n"


def test_serve_reports_config_errors_like_check_config_and_does_not_start(tmp_path):
    main = write(tmp_path / "kalad.conf", BROKEN)
    proc = kalad("serve", "--config", str(main), "--port", "0",
                 "--lmdb-path", str(tmp_path / "lmdb"))
    assert proc.returncode == 78
    assert proc.stderr.splitlines() == broken_lines(main)
    assert not (tmp_path / "lmdb").exists()


def settings_of(ini: str) -> list[str]:
    return [line for line in ini.splitlines() if line and not line.startswith("#")]


def test_print_config_shows_each_source_and_round_trips(tmp_path):
    main = write(tmp_path / "kalad.conf", "[api]\nport = 9000\n")
    drop = write(tmp_path / "kalad.conf.d" / "a.conf", "[store]\njobdb = memory\n")
    proc = kalad("print-config", "--config", str(main), "--keep-runs", "12")
    assert (proc.returncode, proc.stderr) == (0, "")
    out = proc.stdout
    assert f"# files read: {main}, {drop}\n" in out
    assert f"# from {main}:2\nport = 9000\n" in out
    assert f"# from {drop}:2\njobdb = memory\n" in out
    assert "# from flag --keep-runs\nkeep_runs = 12\n" in out
    assert "# from default\nthreads = 8\n" in out
    printed = write(tmp_path / "again" / "kalad.conf", out)
    again = kalad("print-config", "--config", str(printed))
    assert again.returncode == 0
    assert settings_of(again.stdout) == settings_of(out)
    assert "# from default" not in again.stdout


@pytest.mark.parametrize("command", ["check-config", "print-config", "serve"])
def test_config_errors_never_show_a_traceback(tmp_path, command):
    main = write(tmp_path / "kalad.conf", "\x00garbage\n[[[\n=\n")
    proc = kalad(command, "--config", str(main))
    assert proc.returncode == 78 and "Traceback" not in proc.stderr
    assert all(line.startswith(f"kalad: {main}:") for line in proc.stderr.splitlines())
