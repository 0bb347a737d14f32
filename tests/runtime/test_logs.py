"""Log framing: sd-daemon priority prefixes on every line, the journal-stream check, targets."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading

from kalad.runtime import logs


def record(level: int, msg: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("kalad.x", level, __file__, 1, msg, (), exc_info)


def test_every_line_of_a_traceback_is_prefixed():
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    text = logs.JournalFormatter().format(record(logging.ERROR, "job=a failed\nsecond", exc_info))
    lines = text.split("\n")
    assert len(lines) > 4
    assert all(line.startswith("<3>") for line in lines)
    assert lines[0] == "<3>kalad.x: job=a failed"
    assert lines[-1] == "<3>ValueError: boom"


def test_priorities():
    assert [logs.priority(level) for level in
            (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)] == \
        [7, 6, 4, 3, 2]


def test_journal_stream_must_name_this_very_stream(tmp_path, monkeypatch):
    with open(tmp_path / "err", "w") as stream, open(tmp_path / "other", "w") as other:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.is_journal_stream(stream)
        assert not logs.is_journal_stream(other)
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not logs.is_journal_stream(stream)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not logs.is_journal_stream(stream)


def test_targets_without_journal_or_syslog(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", "/nonexistent/log")
    assert logs.choose_target("auto", daemon=False) == "stderr"
    assert logs.choose_target("auto", daemon=True) == "stderr"
    assert "no syslog socket at /nonexistent/log" in logs.describe_fallback("auto", True, "stderr")
    assert logs.describe_fallback("auto", False, "stderr") is None
    assert logs.choose_target("syslog", daemon=False) == "stderr"


def test_setup_and_set_level(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(logging.WARNING, "journal")
        assert root.level == logging.WARNING
        logging.getLogger("kalad.t").warning("two\nlines")
        logging.getLogger("kalad.t").info("below the level")
        logs.stop()  # the listener writes what is queued
        assert capsys.readouterr().err == "<4>kalad.t: two\n<4>lines\n"
        logs.set_level(logging.DEBUG)
        assert root.level == logging.DEBUG
    finally:
        logs.stop()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_a_burst_from_many_threads_is_written_whole_and_in_order(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(logging.INFO, "journal")

        def burst(t: int) -> None:
            for i in range(500):
                logging.getLogger("kalad.t").info("thread %d line %d", t, i)

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logs.stop()
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2000
        for t in range(4):
            mine = [line for line in lines if line.startswith(f"<6>kalad.t: thread {t} ")]
            assert mine == [f"<6>kalad.t: thread {t} line {i}" for i in range(500)]
    finally:
        logs.stop()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_flush_returns_once_what_was_logged_is_written(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(logging.INFO, "journal")
        for i in range(3):  # the writer rests between writes: later lines wait for it
            logging.getLogger("kalad.t").info("line %d", i)
            logs.flush()
            assert capsys.readouterr().err == f"<6>kalad.t: line {i}\n"
    finally:
        logs.stop()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_plain_lines_read_as_the_standard_formatter_writes_them():
    fast, standard = logs.PlainFormatter(), logging.Formatter(logs.PLAIN_FORMAT)
    records = []
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25):
        r = record(logging.INFO, "job=a started")
        r.created, r.msecs = created, int((created - int(created)) * 1000) + 0.0
        records.append(r)
    try:
        raise ValueError("boom")
    except ValueError:
        records.append(record(logging.ERROR, "job=a failed", sys.exc_info()))
    # A second's text is kept: going back to an earlier second must not reuse it.
    assert [fast.format(r) for r in records] == [standard.format(r) for r in records]


def test_the_handoff_queues_records_its_filters_pass():
    q = queue.SimpleQueue()
    handoff = logs._Handoff(q)
    handoff.addFilter(lambda r: "secret" not in r.getMessage())
    assert handoff.handle(record(logging.INFO, "job=a started"))
    assert not handoff.handle(record(logging.INFO, "a secret"))
    assert q.get_nowait().getMessage() == "job=a started" and q.empty()
