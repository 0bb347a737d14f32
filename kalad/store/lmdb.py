"""LmdbStore: the default JobStore, one LMDB environment in the state directory.

Three named databases: ``jobs`` (job id -> job record), ``runs`` (job id, NUL, start
time, run id -> run record, so a prefix scan yields one job's runs oldest first) and
``meta`` (the schema number). Every ``apply`` is one synced write transaction: once
it returns, the change survives kill -9 and power loss. A full map is doubled and the
transaction retried. LMDB may only remap with no transaction open in the process (and
py-lmdb invalidates any that are), and py-lmdb's abort of a write transaction waits
for a moment with no read in flight; so readers pass a gate that a resize or an abort
closes and waits to empty. A ``kalad.lock`` file held with flock keeps a second
daemon off the same store (the in-memory run counts assume a single writer).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Callable, Iterator, Sequence, TypeVar

import lmdb

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.ports import Change, Loaded
from kalad.core.runs import Run
from kalad.store.codec import decode_job, decode_run, encode_job, encode_run, micros

log = logging.getLogger(__name__)

SCHEMA = 1
MiB = 1024 * 1024

_DATA_FILES = ("data.mdb", "lock.mdb")
_PRUNE_BATCH = 10_000  # run keys visited per prune transaction, so apply is not held up long
_STAMP = struct.Struct(">Q")
_STAMP_BIAS = 1 << 63  # offset binary: byte order is time order, even before 1970
_T = TypeVar("_T")


class LmdbStore:
    """JobStore on LMDB. Writes are serialized by a lock; reads run in parallel with them."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        keep_runs: int = 1000,
        map_size: int = 64 * MiB,
        max_readers: int = 126,
    ) -> None:
        if keep_runs < 0:
            raise ValueError("keep_runs must be 0 or more")
        self._path = os.fspath(path)
        self.keep_runs = keep_runs
        self._write_lock = threading.Lock()
        self._gate = _Gate()
        # Runs stored per job, for jobs appended to since open (counted once, on first append).
        self._run_counts: dict[str, int] = {}
        with ExitStack() as undo:
            self._lock_fd = _lock_directory(self._path)
            undo.callback(os.close, self._lock_fd)
            self._env: lmdb.Environment | None = _open_environment(
                self._path, map_size, max_readers
            )
            undo.callback(self._env.close)
            self._jobs, self._runs = _open_databases(self._env, self._path)
            undo.pop_all()
        log.debug("store at %s: open, keep_runs=%d", self._path, keep_runs)

    def load(self) -> Loaded:
        jobs, broken = [], []
        with self._reading() as txn:
            for key, value in txn.cursor(db=self._jobs):
                try:
                    job = decode_job(value)
                except StoreError as exc:
                    broken.append((key.decode("utf-8", "backslashreplace"), str(exc)))
                    continue
                if job.id.encode("utf-8", "surrogatepass") != key:
                    why = f"record holds job {job.id!r}, not the job of its key"
                    broken.append((key.decode("utf-8", "backslashreplace"), why))
                    continue
                jobs.append(job)
        self._remap()
        return Loaded(jobs=jobs, broken=broken)

    def _remap(self) -> None:
        """Close and reopen the environment after a full scan.

        The scan touched every page of the jobs: mapped, they count in kalad's RSS
        (400 MB for a million jobs) although nothing reads them again. Unmapped,
        they are only page cache, which the kernel reclaims as it needs.
        """
        with self._write_lock, self._gate.exclusive():
            env = self._live_env()
            map_size, max_readers = env.info()["map_size"], env.max_readers()
            self._env = None
            env.close()
            self._env = _open_environment(self._path, map_size, max_readers)
            self._jobs, self._runs = _open_databases(self._env, self._path)

    def apply(self, changes: Sequence[Change]) -> None:
        with self._write_lock:
            counts = self._write(lambda txn: self._apply_changes(txn, changes))
            for job_id, count in counts.items():
                if count:
                    self._run_counts[job_id] = count
                else:
                    self._run_counts.pop(job_id, None)

    def list_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        prefix = _run_prefix(job_id)
        values = []
        with self._reading() as txn:
            cursor = txn.cursor(db=self._runs)
            if limit is None:
                if cursor.set_range(prefix):
                    for key, value in cursor:
                        if not key.startswith(prefix):
                            break
                        values.append(value)
            elif limit > 0:
                # From the job's newest run backwards, then put back in order.
                if cursor.set_range(prefix[:-1] + b"\x01"):
                    positioned = cursor.prev()
                else:
                    positioned = cursor.last()
                if positioned:
                    for key, value in cursor.iterprev():
                        if len(values) == limit or not key.startswith(prefix):
                            break
                        values.append(value)
                    values.reverse()
        return [run for run in map(self._decode_run, values) if run is not None]

    def prune_runs(self, older_than: datetime) -> int:
        # In batches, each its own transaction: pruning may be large, and is idempotent.
        cutoff = micros(older_than)
        pruned = 0
        start: bytes | None = b""
        while start is not None:
            with self._write_lock:
                deleted, start, touched = self._write(
                    lambda txn: self._prune_batch(txn, start or b"", cutoff)
                )
                for job_id in touched:
                    self._run_counts.pop(job_id, None)
            pruned += deleted
        return pruned

    def ping(self) -> None:
        self._live_env()

    def close(self) -> None:
        with self._write_lock, self._gate.exclusive():
            if self._env is None:
                return
            self._env.close()
            self._env = None
            os.close(self._lock_fd)
            self._run_counts.clear()
        log.debug("store at %s: closed", self._path)

    def _apply_changes(self, txn: lmdb.Transaction, changes: Sequence[Change]) -> dict[str, int]:
        """Write ``changes`` in ``txn``; return the new run count of every job touched."""
        counts: dict[str, int] = {}
        runs = txn.cursor(db=self._runs)
        for change in changes:
            for job in change.put:
                txn.put(_job_key(job.id), encode_job(job), db=self._jobs)
            for run in change.runs:
                counts[run.job_id] = self._append_run(runs, run, counts)
            for job_id in change.delete:
                txn.delete(_job_key(job_id), db=self._jobs)
                prefix = _run_prefix(job_id)
                runs.set_range(prefix)
                while runs.key().startswith(prefix):  # key() is b"" past the end
                    runs.delete()
                counts[job_id] = 0
        return counts

    def _append_run(self, runs: lmdb.Cursor, run: Run, counts: dict[str, int]) -> int:
        """Store ``run`` and trim its job to the newest ``keep_runs``; return the job's count."""
        prefix = _run_prefix(run.job_id)
        count = counts.get(run.job_id)
        if count is None:
            count = self._run_counts.get(run.job_id)
        if count is None:
            count = _count_prefix(runs, prefix)
        key = prefix + _stamp(run.started_at) + run.id.encode("utf-8", "surrogatepass")
        value = encode_run(run)
        # A new key is the rule: one call (each drops the GIL), a second only to overwrite.
        if runs.put(key, value, overwrite=False):
            count += 1
        else:
            runs.put(key, value)
        if count > self.keep_runs:
            runs.set_range(prefix)
            for _ in range(count - self.keep_runs):
                runs.delete()
            count = self.keep_runs
        return count

    def _prune_batch(
        self, txn: lmdb.Transaction, start: bytes, cutoff: int
    ) -> tuple[int, bytes | None, set[str]]:
        """Prune from key ``start`` on; return (deleted, where to resume or None, job ids)."""
        cursor = txn.cursor(db=self._runs)
        deleted, touched = 0, set()
        found = cursor.set_range(start)
        for _ in range(_PRUNE_BATCH):
            if not found:
                return deleted, None, touched
            key = cursor.key()
            split = key.index(b"\x00") + 1
            if _STAMP.unpack_from(key, split)[0] - _STAMP_BIAS >= cutoff:
                # Runs are in start order and end after they start: skip the job's others.
                found = cursor.set_range(key[: split - 1] + b"\x01")
                continue
            run = self._decode_run(cursor.value())
            if run is not None and micros(run.ended_at) < cutoff:
                cursor.delete()
                found = bool(cursor.key())
                deleted += 1
                touched.add(run.job_id)
            else:
                found = cursor.next()
        return deleted, cursor.key() if found else None, touched

    def _write(self, work: Callable[[lmdb.Transaction], _T]) -> _T:
        """Run ``work`` in one write transaction, growing the map and retrying while it is full.

        The caller holds ``_write_lock``, so no other write transaction can be open.
        """
        env = self._live_env()
        while True:
            try:
                txn = env.begin(write=True)
                try:
                    result = work(txn)
                    txn.commit()
                    return result
                except BaseException:
                    # py-lmdb's abort of a write transaction waits for an instant with no
                    # read in flight, which busy readers may never leave: make one.
                    with self._gate.exclusive():
                        txn.abort()
                    raise
            except lmdb.MapFullError:
                pass
            except lmdb.Error as exc:
                raise _store_error(self._path, exc) from exc
            self._grow(env)

    def _grow(self, env: lmdb.Environment) -> None:
        with self._gate.exclusive():
            size = env.info()["map_size"] * 2
            try:
                env.set_mapsize(size)
            except lmdb.Error as exc:
                raise _store_error(self._path, exc) from exc
        log.info("store at %s: map full, grown to %d KiB", self._path, size // 1024)

    @contextmanager
    def _reading(self) -> Iterator[lmdb.Transaction]:
        with self._gate.shared():
            env = self._live_env()
            try:
                with env.begin() as txn:
                    yield txn
            except lmdb.Error as exc:
                raise _store_error(self._path, exc) from exc

    def _live_env(self) -> lmdb.Environment:
        if self._env is None:
            raise StoreUnavailable(f"store at {self._path} is closed")
        return self._env

    def _decode_run(self, value: bytes) -> Run | None:
        try:
            return decode_run(value)
        except StoreError as exc:
            log.warning("store at %s: skipping unreadable run record: %s", self._path, exc)
            return None


class _Gate:
    """Many readers at once, or one holder with no reader inside (a map resize, close).

    Exclusive holders are serialized by the store's write lock; a waiting one keeps
    new readers out, so a steady stream of reads cannot starve a resize.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._held = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._held)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._held = True
            self._cond.wait_for(lambda: not self._readers)
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


def _job_key(job_id: str) -> bytes:
    key = job_id.encode("utf-8", "surrogatepass")
    if not key or b"\x00" in key:
        raise StoreError(f"job id {job_id!r} cannot be stored: it must be non-empty, without NUL")
    return key


def _run_prefix(job_id: str) -> bytes:
    return _job_key(job_id) + b"\x00"


def _stamp(moment: datetime) -> bytes:
    return _STAMP.pack(micros(moment) + _STAMP_BIAS)


def _count_prefix(cursor: lmdb.Cursor, prefix: bytes) -> int:
    count = 0
    if cursor.set_range(prefix):
        for key in cursor.iternext(values=False):
            if not key.startswith(prefix):
                break
            count += 1
    return count


def _store_error(path: str, exc: lmdb.Error) -> StoreError:
    if isinstance(exc, lmdb.ReadersFullError):
        return StoreUnavailable(f"store at {path}: too many concurrent readers ({exc})")
    return StoreError(f"store at {path}: {exc}")


def _lock_directory(path: str) -> int:
    """Create the store directory (mode 0700, and parents) if missing; flock its ``kalad.lock``."""
    try:
        os.makedirs(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise StoreError(f"store path {path} is not a directory") from None
    except OSError as exc:
        raise StoreError(f"cannot create store directory {path}: {exc.strerror}") from None
    else:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    try:
        fd = os.open(os.path.join(path, "kalad.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open store at {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(f"store at {path} is in use by another kalad (pid {holder})") from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock store at {path}: {exc.strerror}") from None
    return fd


def _open_environment(path: str, map_size: int, max_readers: int) -> lmdb.Environment:
    new = [name for name in _DATA_FILES if not os.path.exists(os.path.join(path, name))]
    try:
        env = lmdb.open(
            path,
            map_size=map_size,
            max_readers=max_readers,
            max_dbs=3,
            mode=0o600,
            create=False,  # the directory exists: _lock_directory made it, mode 0700
            sync=True,
            metasync=True,
            lock=True,
        )
    except (lmdb.Error, OSError) as exc:
        raise StoreError(f"cannot open store at {path}: {exc}") from None
    for name in new:
        os.chmod(os.path.join(path, name), 0o600)  # LMDB's create mode is filtered by the umask
    return env


def _open_databases(env: lmdb.Environment, path: str) -> tuple[lmdb._Database, lmdb._Database]:
    """Open (or create) the named databases; refuse a store written by a newer kalad."""
    try:
        with env.begin(write=True) as txn:
            jobs = env.open_db(b"jobs", txn=txn)
            runs = env.open_db(b"runs", txn=txn)
            meta = env.open_db(b"meta", txn=txn)
            stored = txn.get(b"schema", db=meta)
            if stored is None:
                txn.put(b"schema", str(SCHEMA).encode("ascii"), db=meta)
            elif not stored.isdigit():
                raise StoreError(f"store at {path} has an unreadable schema {stored!r}")
            elif int(stored) > SCHEMA:
                raise StoreError(
                    f"store at {path} has schema {int(stored)}, this kalad supports {SCHEMA}"
                )
    except lmdb.Error as exc:
        raise StoreError(f"cannot open store at {path}: {exc}") from None
    return jobs, runs
