"""Token files, hashing and constant-time checks, and ``kalad token new``."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys

import pytest

from kalad import tokens
from kalad.tokens import TokenError


def line(name: str = "ci", scopes: str = "read,run", token: str = "secret") -> str:
    return f"name={name} scopes={scopes} sha256={tokens.digest(token).hex()}"


def test_a_token_file_is_read_and_a_token_verified(tmp_path):
    (tmp_path / "ci.token").write_text("# the CI runner\n\n" + line() + "\n")
    registry = tokens.load(str(tmp_path), None)
    assert len(registry) == 1 and registry.names == ["ci"]
    found = registry.verify("secret")
    assert found is not None and found.scopes == {"read", "run"}
    assert found.allows("read") and found.allows("run") and not found.allows("write")
    assert registry.verify("Secret") is None and registry.verify("") is None


def test_admin_allows_everything():
    admin = tokens.parse_line(line(scopes="admin"), "x")
    assert all(admin.allows(scope) for scope in tokens.SCOPES)


def test_only_token_files_and_kalad_credentials_are_read(tmp_path):
    tokens_dir, creds = tmp_path / "tokens.d", tmp_path / "creds"
    tokens_dir.mkdir()
    creds.mkdir()
    (tokens_dir / "a.token").write_text(line("a", token="ta"))
    (tokens_dir / "a.token~").write_text("garbage")
    (tokens_dir / ".hidden.token").write_text("garbage")
    (tokens_dir / "notes.txt").write_text("garbage")
    (creds / "kalad-token-b").write_text(line("b", token="tb"))
    (creds / "other-credential").write_text("garbage")
    registry = tokens.load(str(tokens_dir), str(creds))
    assert registry.names == ["a", "b"]
    assert tokens.load(str(tmp_path / "missing"), None).names == []


@pytest.mark.parametrize("text,why", [
    ("name=ci scopes=read", "missing sha256"),
    ("name=ci scopes=read,fly sha256=" + "0" * 64, "unknown scope fly"),
    ("name=ci scopes=read sha256=abc", "64 hex digits"),
    ("name=c/i scopes=read sha256=" + "0" * 64, "token name"),
    ("name=ci scopes=read sha256=" + "0" * 64 + " extra", "expected name=NAME"),
    ("name=ci name=cd scopes=read sha256=" + "0" * 64, "name given twice"),
])
def test_malformed_lines_are_refused_naming_file_and_line(tmp_path, text, why):
    (tmp_path / "bad.token").write_text("# ok\n" + text + "\n")
    with pytest.raises(TokenError, match=why) as info:
        tokens.load(str(tmp_path), None)
    assert f"{tmp_path / 'bad.token'}:2" in str(info.value)


def test_duplicate_names_and_tokens_are_refused(tmp_path):
    (tmp_path / "a.token").write_text(line("a", token="t1") + "\n" + line("a", token="t2"))
    with pytest.raises(TokenError, match="already used"):
        tokens.load(str(tmp_path), None)
    (tmp_path / "a.token").write_text(line("a", token="t1") + "\n" + line("b", token="t1"))
    with pytest.raises(TokenError, match="same token"):
        tokens.load(str(tmp_path), None)


def kalad(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kalad.cli.kalad", *args],
                          capture_output=True, text=True, timeout=30)


def test_token_new_prints_the_token_once_and_the_line_to_install(tmp_path):
    proc = kalad("token", "new", "ci", "--scopes", "run,read", "--tokens-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert token.startswith("kalad_") and len(token) > 40 and "\n" not in token
    assert token not in proc.stderr
    expected = tokens.format_line("ci", {"read", "run"}, tokens.digest(token))
    assert expected in proc.stderr and str(tmp_path / "ci.token") in proc.stderr
    assert not os.listdir(tmp_path)  # nothing written without --install


def test_token_new_install_writes_a_0600_file_the_daemon_reads(tmp_path):
    target = tmp_path / "tokens.d"
    proc = kalad("token", "new", "ops", "--scopes", "admin", "--tokens-dir", str(target),
                 "--install")
    assert proc.returncode == 0, proc.stderr
    path = target / "ops.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert proc.stdout.strip() not in path.read_text()
    found = tokens.load(str(target), None).verify(proc.stdout.strip())
    assert found is not None and found.name == "ops" and found.scopes == {"admin"}
    again = kalad("token", "new", "ops", "--scopes", "read", "--tokens-dir", str(target),
                  "--install")
    assert again.returncode == 1 and "exists" in again.stderr


def test_token_new_install_lets_the_daemon_group_read_it(tmp_path, monkeypatch, capsys):
    from kalad.cli import token as token_cli

    group = os.getgid()  # stands in for group kalad, which this machine may not have
    monkeypatch.setattr(token_cli, "daemon_group_id", lambda: group)
    args = argparse.Namespace(token_action="new", name="ops", scopes="read",
                              tokens_dir=str(tmp_path), install=True)
    assert token_cli.run(args) == 0
    st = (tmp_path / "ops.token").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == group
    token = capsys.readouterr().out.strip()
    assert tokens.load(str(tmp_path), None).verify(token).name == "ops"


@pytest.mark.parametrize("args,why", [
    (["token", "new", "ci", "--scopes", "read,root"], "unknown scope root"),
    (["token", "new", "c i", "--scopes", "read"], "token name"),
    (["token"], "usage"),
])
def test_token_new_refuses_bad_input(args, why):
    proc = kalad(*args)
    assert proc.returncode == 2 and why in proc.stderr and proc.stdout == ""
