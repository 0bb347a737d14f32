"""The supervisor: the one module of kalad that starts processes.

Every attempt is started the same way (STYLE 8): posix_spawn (``runtime/spawn.py``)
from the calling thread (no fork of the threaded daemon), the argv as given with no
shell, exactly the attempt's environment, a new session (so the process group id is
the pid), stdin from ``/dev/null``, and stdout and stderr into one pipe of which only
a bounded tail is kept.

One watcher thread watches every child without a thread per child: an epoll set
holds each child's pidfd (readable once it exits) and its pipe. ``launch`` adds
them itself, so starting a job does not wake the watcher; only a child with a
timeout is handed over (through an eventfd), as a deadline for the watcher's heap,
checked through the poll timeout. When the leader exits the attempt is over, even if a
grandchild still holds the pipe: the pipe is drained without blocking and closed.

A wake-up of the watcher costs about as much as reaping an attempt. So when attempts
end faster than one every ``_REST`` seconds, it rests that long after each round and
reaps what ended meanwhile together: under load an end is noticed (and recorded) up
to ``_REST`` late, while an attempt ending on its own is reaped at once.

Signals always go to the whole process group, and only while the leader is unreaped
(a zombie leader pins the group id, so it cannot name someone else's group).
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import logging
import os
import select
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from kalad.core.ports import Attempt, Clock
from kalad.core.runs import AttemptOutcome
from kalad.runtime.clock import sleep_until
from kalad.runtime.prctl import PR_SET_CHILD_SUBREAPER, prctl
from kalad.runtime.spawn import Spawner

log = logging.getLogger(__name__)

Done = Callable[[AttemptOutcome], None]

_CHUNK = 64 * 1024
_DRAIN_LIMIT = 1024 * 1024  # bytes read after the leader exits (a grandchild may keep writing)
_ORPHAN_POLL_MAX = 1.0  # seconds between sweeps for orphaned zombies
_ORPHAN_POLL_MIN = 0.05  # ... and at least, however many attempts exit
_REST = 0.005  # seconds the watcher rests after a round while attempts end faster than this
_REFUSED = "not started: kalad is stopping"

# Dispositions a child must not inherit: Python ignores SIGPIPE and SIGXFSZ, and the
# daemon may ignore others; caught signals are reset by exec anyway.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _resolve(name: str, env: Mapping[str, str]) -> str:
    """The file to execute for ``name``, searched on the attempt's own PATH.

    Like ``execvp`` and ``subprocess``, not like glibc's ``posix_spawnp``, which
    would search the daemon's PATH instead of the one the job is given.
    """
    if "/" in name:
        return name
    denied = False
    for directory in os.get_exec_path(env):
        candidate = os.path.join(directory or ".", name)
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = True
    if denied:
        raise PermissionError(f"permission denied: {name}")
    raise FileNotFoundError(f"command not found: {name}")


def _pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends are both above 2.

    The child's file actions write fds 0-2; an end that happened to be one of them
    (the daemon's stdio closed) would be clobbered or lose nothing on dup2.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    if r < 3 or w < 3:
        high_r = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 3)
        high_w = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(r)
        os.close(w)
        r, w = high_r, high_w
    return r, w


def _set_child_subreaper(on: bool) -> bool:
    try:
        prctl(PR_SET_CHILD_SUBREAPER, int(on))
    except OSError as exc:
        log.warning("cannot %s child subreaper: %s", "become" if on else "stop being", exc)
        return False
    return True


class _Child:
    """One running attempt. Fields marked (lock) change only under ``Supervisor._lock``."""

    __slots__ = (
        "attempt", "done", "pid", "pidfd", "pipe", "started_at", "output", "trimmed",
        "reaped", "kill_reason", "shutdown",
    )

    def __init__(self, attempt: Attempt, done: Done, pid: int, pidfd: int, pipe: int,
                 started_at: datetime) -> None:
        self.attempt = attempt
        self.done = done
        self.pid = pid
        self.pidfd = pidfd
        self.pipe: int | None = pipe  # read end, non-blocking; None once closed
        self.started_at = started_at
        self.output = bytearray()
        self.trimmed = False
        self.reaped = False  # (lock) once True, the pid and group id may name others
        self.kill_reason = ""  # (lock) set when kalad decided to stop it
        self.shutdown = False  # (lock) stopped by terminate_all


class Supervisor:
    """Starts attempts as child processes and reports each outcome exactly once.

    ``reap_orphans`` makes this process a child subreaper and lets the watcher reap
    every exited child that is not a running attempt, so a job's orphaned grandchildren
    come back to kalad and never linger as zombies (kalad as PID 1 in a container, or
    under an init that does not reap). Enable it only where the supervisor is the sole
    starter of processes, as in the daemon: it would reap anyone else's children too.
    """

    def __init__(self, clock: Clock, output_limit: int = 64 * 1024, kill_grace: float = 5.0,
                 reap_orphans: bool = False) -> None:
        if output_limit < 1:
            raise ValueError(f"output_limit must be positive, not {output_limit}")
        if kill_grace < 0:
            raise ValueError(f"kill_grace must not be negative, not {kill_grace}")
        self._clock = clock
        self._output_limit = output_limit
        self._kill_grace = kill_grace
        self._reap_orphans = reap_orphans
        # Spawns in flight and the sections that need none (see ``_no_spawns``).
        self._spawner = Spawner(_DEFAULT_SIGNALS)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._children: dict[int, _Child] = {}  # (lock) pid -> child, until done has run
        self._spawning = 0  # (lock) spawns in flight
        self._exclusive = False  # (lock) a _no_spawns section holds off new spawns
        self._deadlines: list[_Child] = []  # (lock) launched with a timeout, not yet on the heap
        self._woken = False  # (lock) a wake-up is already in the eventfd
        self._closing = False  # (lock) terminate_all or stop began: launch refuses
        self._hurried = False  # (lock) hurry(): terminate_all skips what is left of its grace
        self._stopping = False
        self._timers: list[tuple[float, int, _Child, str]] = []  # watcher thread only
        self._unknown_exited = 0  # watcher thread only: the exited pid a sweep left for the next
        self._seq = itertools.count()
        self._epoll = select.epoll()
        # fd -> (child, "exit" or "out"); None for the eventfd. Added by launching
        # threads, removed by the watcher: single dict operations, atomic under the GIL.
        self._watched: dict[int, tuple[_Child, str] | None] = {}
        self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._watch_fd(self._wake_fd, None)
        self._thread: threading.Thread | None = None
        self._subreaper = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the watcher thread (children launched before are picked up)."""
        if self._thread is not None:
            return
        if self._reap_orphans:
            self._subreaper = _set_child_subreaper(True)
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread; children still running are killed at once first."""
        if self._stopped:
            return
        with self._no_spawns(), self._lock:
            self._closing = True  # no launch is half-way through once this is set
            left = sum(not child.reaped for child in self._children.values())
            unfinished = bool(self._children)
        if left:
            log.warning("stopping the supervisor with %d job(s) still running; killing them",
                        left)
        if unfinished:
            self.start()  # children launched before start() need the watcher to be reaped
            self.terminate_all(0.0)
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join()
        if self._subreaper:
            _set_child_subreaper(False)
        self._epoll.close()
        os.close(self._wake_fd)
        self._stopped = True

    # -- the Launcher protocol ---------------------------------------------------------

    def launch(self, attempt: Attempt, done: Done) -> None:
        """Start ``attempt`` and return; ``done`` runs once, on the watcher thread.

        When the attempt cannot be started at all (no such command, not executable,
        no file descriptors left, kalad stopping) ``done`` runs here, at once, with an
        outcome whose ``message`` says why.
        """
        started_at = self._clock.now()
        argv = attempt.argv
        name = argv[0] if argv else ""
        try:
            if not argv or not name:
                raise ValueError("empty command")
            path = _resolve(name, attempt.env)
            r, w = _pipe()
        except FileNotFoundError:
            return self._failed(attempt, done, started_at, f"command not found: {name}")
        except PermissionError:
            return self._failed(attempt, done, started_at, f"permission denied: {name}")
        except (OSError, ValueError) as exc:
            return self._failed(attempt, done, started_at, f"cannot start {name}: {exc}")
        try:
            message = self._spawn(attempt, done, path, r, w, started_at)
        finally:
            os.close(w)  # the child holds its own copies on fds 1 and 2
        if message:
            os.close(r)
            self._failed(attempt, done, started_at, message, killed=message == _REFUSED)

    def _spawn(self, attempt: Attempt, done: Done, path: str, r: int, w: int,
               started_at: datetime) -> str:
        """Spawn and register the child; return why not, or "" on success.

        Linux queues the new child on this thread's CPU, and the Python that follows
        the spawn ran first while the other CPU idled: 0.1-0.3 ms added to the child's
        start. An attempt started ``alone`` on its instant yields the CPU to the child
        first; the thread then waits for the child's start-up (1.5 ms here), so not
        when other runs are due meanwhile.
        """
        name = attempt.argv[0]
        on_time = False

        def on_instant() -> None:  # all is prepared: wait for the run's instant, if any
            nonlocal started_at, on_time
            if attempt.start_at is not None:
                on_time = sleep_until(attempt.start_at)
                started_at = self._clock.now()

        if not self._enter_spawn():
            return _REFUSED
        try:
            try:
                pid = self._spawner.spawn(path, attempt.argv, attempt.env, w, on_instant)
            except FileNotFoundError:
                return f"command not found: {name}"
            except PermissionError:
                return f"permission denied: {name}"
            except OSError as exc:
                return f"cannot start {name}: {exc.strerror or exc}"
            except ValueError as exc:
                return f"cannot start {name}: {exc}"
            if on_time and attempt.alone:
                os.sched_yield()  # see ``_spawn``
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                return _take_back(attempt, pid, exc)
            os.set_blocking(r, False)
            child = _Child(attempt, done, pid, pidfd, r, started_at)
            with self._lock:
                try:
                    self._watch_fd(pidfd, (child, "exit"))
                    self._watch_fd(r, (child, "out"))
                except OSError as exc:  # the epoll set is full (fs.epoll.max_user_watches)
                    child.reaped = True  # a pidfd event already polled finds nothing to do
                    if pidfd in self._watched:
                        self._unwatch_fd(pidfd)
                    os.close(pidfd)
                    return _take_back(attempt, pid, exc)
                self._children[pid] = child  # the watcher's _exited waits for this lock
                wake = attempt.timeout is not None and not self._woken
                if attempt.timeout is not None:
                    self._deadlines.append(child)
                    self._woken = True
            if wake:
                self._wake()  # inside the spawn section: stop() cannot have closed the eventfd
        finally:
            self._leave_spawn()
        log.info("job=%s run=%s pid=%d name=%r started (%s, attempt %d)", attempt.job_id,
                 attempt.run_id, pid, attempt.job_name, attempt.trigger, attempt.number)
        log.debug("run=%s argv=%r timeout=%s", attempt.run_id, attempt.argv, attempt.timeout)
        return ""

    # Spawns run concurrently (the GIL is released meanwhile, see ``spawn``); the
    # orphan sweep and shutdown need none in flight, so a spawned child is always
    # registered before anyone could take it for an orphan or miss it at shutdown.

    def _enter_spawn(self) -> bool:
        """Begin a spawn; False when kalad is stopping."""
        with self._changed:
            while self._exclusive:
                self._changed.wait()
            if self._closing:
                return False
            self._spawning += 1
            return True

    def _leave_spawn(self) -> None:
        with self._changed:
            self._spawning -= 1
            if not self._spawning:
                self._changed.notify_all()

    @contextlib.contextmanager
    def _no_spawns(self) -> Iterator[None]:
        """Hold off new spawns and wait for those in flight to be registered."""
        with self._changed:
            while self._exclusive:
                self._changed.wait()
            self._exclusive = True
            while self._spawning:
                self._changed.wait()
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()

    def _failed(self, attempt: Attempt, done: Done, started_at: datetime, message: str,
                killed: bool = False) -> None:
        log.warning("cannot start job=%s run=%s: %s", attempt.job_name, attempt.run_id, message)
        outcome = AttemptOutcome(started_at=started_at, ended_at=self._clock.now(),
                                 exit_status=None, message=message, killed=killed)
        _call(done, outcome, attempt)

    # -- queries and shutdown ------------------------------------------------------------

    def running(self) -> list[tuple[str, str, int]]:
        """(run_id, job_name, pid) of every child not yet reaped."""
        with self._lock:
            return [(c.attempt.run_id, c.attempt.job_name, c.pid)
                    for c in self._children.values() if not c.reaped]

    def terminate_all(self, grace: float) -> None:
        """SIGTERM every child's group, SIGKILL what is left after ``grace`` seconds.

        Returns once every child is reaped and every ``done`` has run. From here on
        ``launch`` refuses new attempts.
        """
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._children:
                    raise RuntimeError("terminate_all needs the watcher thread running")
        with self._no_spawns(), self._lock:
            self._closing = True
        now = self._clock.monotonic()
        deadline = now + max(grace, 0.0)
        next_report = now
        escalated = False
        with self._changed:
            for child in self._children.values():
                self._stop_child(child, signal.SIGTERM, shutdown=True)
            while self._children:
                now = self._clock.monotonic()
                if not escalated and (now >= deadline or self._hurried):
                    escalated = True
                    for child in self._children.values():
                        if not child.reaped:
                            log.warning("job=%s run=%s pid=%d outlived the stop grace; SIGKILL",
                                        child.attempt.job_name, child.attempt.run_id, child.pid)
                        self._stop_child(child, signal.SIGKILL, shutdown=True)
                if now >= next_report:
                    next_report = now + 1.0
                    waiting = [c for c in self._children.values() if not c.reaped]
                    if waiting:
                        log.info("waiting for %d job%s: %s", len(waiting),
                                 "" if len(waiting) == 1 else "s",
                                 ", ".join(f"{c.attempt.job_name} (pid {c.pid})" for c in waiting))
                wait_until = next_report if escalated else min(next_report, deadline)
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the supervisor's watcher thread died")
                self._changed.wait(max(wait_until - now, 0.001))

    def hurry(self) -> None:
        """Make a running (or the next) ``terminate_all`` SIGKILL now, skipping its grace."""
        with self._changed:
            self._hurried = True
            self._changed.notify_all()

    def _stop_child(self, child: _Child, sig: signal.Signals, shutdown: bool) -> None:
        """Signal the child's group, remembering why (call with ``_lock`` held)."""
        if child.reaped:
            return
        if shutdown and (not child.kill_reason or child.shutdown):
            child.shutdown = True
            child.kill_reason = f"killed by kalad at shutdown ({sig.name})"
        _kill_group(child.pid, sig)

    # -- the watcher thread ----------------------------------------------------------------

    def _watch_fd(self, fd: int, data: tuple[_Child, str] | None) -> None:
        self._watched[fd] = data  # before the fd is polled: its first event finds it
        self._epoll.register(fd, select.EPOLLIN)

    def _unwatch_fd(self, fd: int) -> None:
        self._epoll.unregister(fd)
        self._watched.pop(fd, None)

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except BlockingIOError:
            pass  # the counter is full: the watcher is woken anyway

    def _watch(self) -> None:
        next_sweep = self._clock.monotonic()
        sweep_delay = _ORPHAN_POLL_MAX
        last_exit = float("-inf")  # when the previous round reaped an attempt
        while not self._stopping:
            now = self._clock.monotonic()
            timeout: float | None = None
            if self._timers:
                timeout = max(self._timers[0][0] - now, 0.0)
            if self._reap_orphans:
                until_sweep = max(next_sweep - now, 0.0)
                timeout = until_sweep if timeout is None else min(timeout, until_sweep)
            try:
                events = self._epoll.poll(-1 if timeout is None else timeout)
            except InterruptedError:
                continue
            exited = False
            for fd, _mask in events:
                try:
                    watched = self._watched.get(fd, False)
                    if watched is None:
                        self._take_deadlines()
                    elif watched:  # False: an event of an fd closed meanwhile
                        child, what = watched
                        if what == "out":
                            self._read(child)
                        else:
                            exited = self._exited(child) or exited
                except Exception:
                    log.exception("supervisor: error while handling an event")
            try:
                self._run_timers()
                if self._reap_orphans:
                    now = self._clock.monotonic()
                    if exited:  # a job's leftovers often exit with it: look soon
                        sweep_delay = _ORPHAN_POLL_MIN
                        next_sweep = min(next_sweep, now + _ORPHAN_POLL_MIN)
                    if now >= next_sweep:
                        self._sweep_orphans()
                        next_sweep = now + sweep_delay
                        sweep_delay = min(sweep_delay * 4, _ORPHAN_POLL_MAX)
            except Exception:
                log.exception("supervisor: error in the watcher loop")
            if exited:
                now = self._clock.monotonic()
                if now - last_exit < 2 * _REST:  # busy: let the next ends gather
                    time.sleep(_REST)
                last_exit = now
        if self._reap_orphans:
            self._sweep_orphans(final=True)

    def _take_deadlines(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        with self._lock:
            pending, self._deadlines = self._deadlines, []
            self._woken = False
        for child in pending:
            if not child.reaped:
                when = self._clock.monotonic() + max(child.attempt.timeout, 0.0)
                heapq.heappush(self._timers, (when, next(self._seq), child, "term"))

    def _read(self, child: _Child) -> None:
        if child.pipe is None:
            return
        try:
            data = os.read(child.pipe, _CHUNK)
        except BlockingIOError:
            return
        if data:
            self._keep(child, data)
        else:
            self._close_pipe(child)

    def _keep(self, child: _Child, data: bytes) -> None:
        buf = child.output
        buf += data
        excess = len(buf) - self._output_limit
        if excess > 0:
            del buf[:excess]
            child.trimmed = True

    def _close_pipe(self, child: _Child) -> None:
        if child.pipe is None:
            return
        self._unwatch_fd(child.pipe)
        os.close(child.pipe)
        child.pipe = None

    def _run_timers(self) -> None:
        now = self._clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, child, action = heapq.heappop(self._timers)
            with self._lock:
                if child.reaped:
                    continue
                if action == "term":
                    timeout = child.attempt.timeout
                    if not child.kill_reason:
                        child.kill_reason = f"timed out after {timeout:g} s"
                    log.warning("job=%s run=%s pid=%d timed out after %g s; SIGTERM",
                                child.attempt.job_name, child.attempt.run_id, child.pid, timeout)
                    _kill_group(child.pid, signal.SIGTERM)
                    heapq.heappush(self._timers, (now + self._kill_grace, next(self._seq),
                                                  child, "kill"))
                else:
                    log.warning("job=%s run=%s pid=%d still alive %g s after SIGTERM; SIGKILL",
                                child.attempt.job_name, child.attempt.run_id, child.pid,
                                self._kill_grace)
                    _kill_group(child.pid, signal.SIGKILL)

    def _exited(self, child: _Child) -> bool:
        """Reap the leader and report the attempt; False if it had not exited after all."""
        with self._lock:
            if child.reaped:
                return False
            if child.kill_reason:
                # Stragglers of a group kalad is stopping; the zombie leader pins its id.
                _kill_group(child.pid, signal.SIGKILL)
            try:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, None  # reaped elsewhere (SIGCHLD ignored?)
            if pid == 0:
                return False
            child.reaped = True
        ended_at = self._clock.now()
        drained = 0
        while child.pipe is not None and drained < _DRAIN_LIMIT:
            try:
                data = os.read(child.pipe, _CHUNK)
            except BlockingIOError:
                break
            if not data:
                break
            drained += len(data)
            self._keep(child, data)
        self._close_pipe(child)
        self._unwatch_fd(child.pidfd)
        os.close(child.pidfd)
        outcome = self._outcome(child, status, ended_at)
        child.output = bytearray()  # a pending timer may hold the child until its deadline
        log.debug("exited job=%s run=%s pid=%d exit_status=%s %s", child.attempt.job_name,
                  child.attempt.run_id, child.pid, outcome.exit_status, outcome.message)
        _call(child.done, outcome, child.attempt)
        with self._changed:
            del self._children[child.pid]
            self._changed.notify_all()
        return True

    def _outcome(self, child: _Child, status: int | None, ended_at: datetime) -> AttemptOutcome:
        output = bytes(child.output)
        if child.trimmed:
            # The cut may have split a UTF-8 sequence: drop its continuation bytes.
            skip = 0
            while skip < min(3, len(output)) and 0x80 <= output[skip] <= 0xBF:
                skip += 1
            output = output[skip:]
        code = None if status is None else os.waitstatus_to_exitcode(status)
        if child.kill_reason:
            message = child.kill_reason
        elif code is None:
            message = "exit status unknown: the child was reaped elsewhere"
        elif code < 0:
            message = f"killed by signal {-code} ({_signal_name(-code)})"
        elif code > 0:
            message = f"exit status {code}"
        else:
            message = ""
        return AttemptOutcome(started_at=child.started_at, ended_at=ended_at, exit_status=code,
                              output=output.decode("utf-8", errors="replace"), message=message,
                              killed=bool(child.kill_reason), pid=child.pid)

    def _sweep_orphans(self, final: bool = False) -> None:
        """Reap exited children that are not attempts (orphans handed to us as subreaper).

        ``final``: the watcher is ending, and there is no next sweep to wait for.
        """
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            with self._lock:
                child = self._children.get(info.si_pid)
                # With no spawn in flight (none can begin while the lock is held), a
                # pid that is not an attempt is an orphan.
                if child is None and not self._spawning:
                    _reap_orphan(info.si_pid)
                    continue
            if child is None:
                # An orphan, or an attempt whose spawn is still registering it. The
                # first time, look again at the next sweep: a spawn registers its
                # child within a millisecond or so, and holding off every spawn to
                # be sure stalled the timer under load (10 % of its threads' time
                # at 1,300 starts/s). A pid still unknown then is settled for sure.
                if not final and info.si_pid != self._unknown_exited:
                    self._unknown_exited = info.si_pid
                    return
                with self._no_spawns(), self._lock:
                    child = self._children.get(info.si_pid)
                    if child is None:
                        _reap_orphan(info.si_pid)
                        continue
            # An attempt whose pidfd event has not come yet (or is in the poll's events).
            if not self._exited(child):
                return


def _reap_orphan(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    log.debug("reaped orphan pid=%d", pid)


def _take_back(attempt: Attempt, pid: int, exc: OSError) -> str:
    """Kill and reap a child that cannot be watched rather than leave it unsupervised."""
    log.error("cannot watch job=%s run=%s pid=%d: %s; killing it",
              attempt.job_name, attempt.run_id, pid, exc)
    _kill_group(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return f"cannot watch {attempt.argv[0]}: {exc.strerror or exc}"


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        log.warning("cannot signal process group %d with %s: %s", pgid, _signal_name(sig), exc)


def _call(done: Done, outcome: AttemptOutcome, attempt: Attempt) -> None:
    try:
        done(outcome)
    except Exception:
        log.exception("done callback failed for job=%s run=%s", attempt.job_name, attempt.run_id)
