"""sd_notify datagrams and the watchdog's pacing."""

from __future__ import annotations

import socket

from kalad.runtime import systemd


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listen(tmp_path, monkeypatch) -> socket.socket:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    return sock


def received(sock) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_sends_one_datagram(tmp_path, monkeypatch):
    with listen(tmp_path, monkeypatch) as sock:
        assert systemd.notify("READY=1", "STATUS=0 jobs")
        assert received(sock) == ["READY=1\nSTATUS=0 jobs"]


def test_notify_without_a_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify("READY=1")


def test_watchdog_pings_at_most_every_half_period(tmp_path, monkeypatch):
    ticks = Ticks()
    dog = systemd.Watchdog.from_environ(ticks, {"WATCHDOG_USEC": "2000000"})
    assert dog.enabled and dog.interval == 1.0
    assert dog.max_wait(1.0) == 0.5  # the timer beats often enough to keep the pace
    with listen(tmp_path, monkeypatch) as sock:
        dog.beat()
        ticks.now += 0.4
        dog.beat()
        assert received(sock) == ["WATCHDOG=1"]
        ticks.now += 0.6
        dog.beat()
        assert received(sock) == ["WATCHDOG=1"]


def test_watchdog_off_unless_asked_for_this_process():
    assert not systemd.Watchdog.from_environ(Ticks(), {}).enabled
    assert not systemd.Watchdog.from_environ(
        Ticks(), {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).enabled
    assert not systemd.Watchdog.from_environ(Ticks(), {"WATCHDOG_USEC": "x"}).enabled
    assert systemd.Watchdog.from_environ(Ticks(), {}).max_wait(1.0) == 1.0
