"""The ctypes spawner on its own, with real children: outputs and environments stay apart."""

from __future__ import annotations

import os
import signal
from collections import ChainMap

import pytest

from kalad.runtime.spawn import Spawner

pytestmark = pytest.mark.timeout(60)

SH = "/bin/sh"
ENV = "/usr/bin/env"


def spawn_and_read(spawner: Spawner, script: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``sh -c script`` with its output in a fresh pipe; (exit code, output)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = spawner.spawn(SH, [SH, "-c", script], env, w)
    finally:
        os.close(w)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def test_each_child_writes_to_its_own_pipe_when_descriptors_are_reused():
    # Pipes closed and re-made get the same descriptor numbers, and the spawner keeps the
    # file actions per descriptor: every child must still reach its own pipe, stdout and
    # stderr alike, and nobody else's.
    spawner = Spawner([signal.SIGPIPE])
    for i in range(20):
        code, out = spawn_and_read(spawner, f"echo out-{i}; echo err-{i} >&2; exit {i % 3}",
                                   {"PATH": "/usr/bin:/bin"})
        assert (code, out) == (i % 3, f"out-{i}\nerr-{i}\n".encode())


def test_two_children_alive_at_once_keep_their_outputs_apart():
    spawner = Spawner([signal.SIGPIPE])
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(2)]
    pids = []
    for k, (_, w) in enumerate(pipes):
        pids.append(spawner.spawn(SH, [SH, "-c", f"echo child-{k}"], {}, w))
        os.close(w)
    for k, (r, _) in enumerate(pipes):
        assert os.read(r, 4096) == f"child-{k}\n".encode()
        assert os.read(r, 4096) == b""
        os.close(r)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0


def test_the_environment_is_exactly_what_was_given_each_time():
    spawner = Spawner([signal.SIGPIPE])
    for run in ("a", "b"):
        env = {"PATH": "/usr/bin:/bin", "KALAD_RUN_ID": run, "VALUE": "välue"}
        code, out = spawn_and_read(spawner, "env", env)
        assert code == 0
        lines = sorted(out.decode().splitlines())
        assert [l for l in lines if not l.startswith(("PWD=", "SHLVL=", "_="))] == sorted(
            f"{k}={v}" for k, v in env.items()
        )


def child_env(spawner: Spawner, env) -> list[str]:
    """The entries the child was exec'd with, as ``env`` prints them (duplicates too)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = spawner.spawn(ENV, [ENV], env, w)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as out:
        lines = out.read().decode().splitlines()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return sorted(lines)


def test_an_attempts_own_entries_over_a_shared_base_reach_the_child_exactly():
    # The base is encoded once and reused while it is the same object; a run's entry of
    # the same name wins, and another base object is encoded afresh.
    spawner = Spawner([signal.SIGPIPE])
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "VALUE": "välue"}
    cases = [
        ChainMap({"KALAD_RUN_ID": "a"}, base),
        ChainMap({"KALAD_RUN_ID": "b", "EXTRA": "1"}, base),
        ChainMap({"KALAD_RUN_ID": "c", "LANG": "de_DE.UTF-8"}, base),
        ChainMap({}, base),
        ChainMap({"KALAD_RUN_ID": "d"}, {"PATH": "/bin"}),
        ChainMap({"KALAD_RUN_ID": "e"}, base),
    ]
    for env in cases:
        assert child_env(spawner, env) == sorted(f"{k}={v}" for k, v in dict(env).items())


@pytest.mark.parametrize("env, why", [
    ({"": "x"}, "illegal environment variable name"),
    ({"A=B": "x"}, "illegal environment variable name"),
    ({"A": "x\0y"}, "NUL byte"),
    ({"A\0": "x"}, "NUL byte"),
    (ChainMap({"A": "x"}, {"B": "y\0"}), "NUL byte"),
    (ChainMap({"A": "x\0"}, {"B": "y"}), "NUL byte"),
])
def test_an_environment_exec_cannot_carry_is_refused_every_time(env, why):
    spawner = Spawner([signal.SIGPIPE])
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        for _ in range(2):  # not only the first time: a refusal is not cached as a success
            with pytest.raises(ValueError, match=why):
                spawner.spawn(SH, [SH, "-c", "true"], env, w)
    finally:
        os.close(r)
        os.close(w)
