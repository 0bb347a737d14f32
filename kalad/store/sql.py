"""SqlStore: the JobStore logic shared by the SQLite, PostgreSQL and MariaDB/MySQL backends.

Three tables, each named with the store's prefix (default ``kalad_``):

* ``<prefix>meta (name, value)``: the row ``schema`` holds the schema number;
* ``<prefix>jobs (id, data)``: one row per job, ``data`` the codec's record;
* ``<prefix>runs (job_id, started, run_id, ended, data)``: primary key
  (job_id, started, run_id), so a job's runs come out in start order then run id,
  as from LMDB; ``started``/``ended`` are microseconds since the epoch, and an index
  on ``ended`` serves ``prune_runs``.

Every ``apply`` is one transaction (``BEGIN`` .. ``COMMIT``), all its changes in
order, committed (so durable, by the server's settings) before it returns. The
store keeps one connection behind a lock, so any thread may call it. A lost
connection (or a connect that fails) is retried a few times with backoff (each
retry logged at DEBUG, a successful reconnect at INFO), then ``StoreUnavailable``
is raised and the caller reports it (the group committer: one WARNING per outage);
after that, each call makes a single attempt, without sleeping, until one succeeds.
Any other database error rolls the transaction back and raises ``StoreError``.
Re-applying a batch whose COMMIT was cut off is harmless: every operation is an
upsert, a delete or a trim.

A backend subclass supplies the driver: how to connect, which errors mean "lost",
the DDL and the upsert statements. Statements are written with ``%s`` placeholders;
``_PARAMSTYLE_QMARK`` backends get them rewritten to ``?``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.ports import Change, Loaded
from kalad.core.runs import Run
from kalad.store import ownership
from kalad.store.codec import decode_job, decode_run, encode_job, encode_run, micros

log = logging.getLogger(__name__)

SCHEMA = 1
# Upgrades from the schema number (key) to the next one: a list of statements.
UPGRADES: dict[int, Callable[[str], list[str]]] = {}

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)  # seconds between attempts after a lost connection
CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT = 30  # seconds
TRIM_CHUNK = 100  # jobs per retention statement

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}\Z")
_T = TypeVar("_T")


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(f"table prefix {prefix!r} must be letters, digits and _ (not first digit)")
    return prefix


def check_job_id(job_id: str) -> str:
    if not job_id or "\x00" in job_id:
        raise StoreError(f"job id {job_id!r} cannot be stored: it must be non-empty, without NUL")
    return job_id


class SqlStore:
    """JobStore on a DB-API connection; subclasses name the driver and the dialect."""

    kind = "sql"  # backend name used in messages
    qmark = False  # True: the driver wants ? placeholders
    lost_errors: tuple[type[BaseException], ...] = ()  # connection gone: reconnect and retry
    driver_errors: tuple[type[BaseException], ...] = ()  # every other database error
    begin_sql = "BEGIN"

    def _is_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` (one of ``lost_errors``) is worth a reconnect and retry."""
        return True

    def __init__(self, *, keep_runs: int = 1000, prefix: str = "kalad_",
                 exclusive: bool = True) -> None:
        if keep_runs < 0:
            raise ValueError("keep_runs must be 0 or more")
        self.keep_runs = keep_runs
        self._prefix = check_prefix(prefix)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        self._unavailable = False  # the last call gave up on the server
        self._owner: Any = None  # what holds the store's lock (see kalad.store.ownership)
        self._keeper: ownership.Keeper | None = None
        self._sql = {name: self._q(text) for name, text in self._statements().items()}
        self._trims: dict[int, str] = {}
        try:
            if exclusive:
                self._take_ownership()
            self._call(self._create_schema, what="open")
        except BaseException:
            self.close()
            raise
        log.debug("%s store %s: open, keep_runs=%d", self.kind, self.where(), keep_runs)

    # -- what a backend supplies -------------------------------------------------------

    def where(self) -> str:
        """Where the store is, for messages (no password)."""
        raise NotImplementedError

    def _connect(self) -> Any:
        raise NotImplementedError

    def _ddl(self) -> list[str]:
        raise NotImplementedError

    def _upsert(self, table: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
        raise NotImplementedError

    def _try_lock(self) -> tuple[Any, str]:
        """Take the store's lock: (what holds it, "") or (None, who holds it instead)."""
        raise NotImplementedError

    def _lock_alive(self, owner: Any) -> None:
        """Raise one of ``driver_errors`` if ``owner`` no longer holds the lock."""

    def _release(self, owner: Any) -> None:
        """Let go of the lock (closing its connection does)."""
        try:
            owner.close()
        except Exception:
            pass

    # -- one daemon per store ----------------------------------------------------------

    def _take_ownership(self) -> None:
        deadline = time.monotonic() + ownership.LOCK_WAIT
        failures = 0
        while True:
            try:
                owner, holder = self._try_lock()
            except self.lost_errors as exc:
                if not self._is_lost(exc) or failures == len(RETRY_DELAYS):
                    raise StoreUnavailable(
                        f"{self.kind} store {self.where()} unavailable (lock): {_one_line(exc)}"
                    ) from exc
                log.debug("%s store %s: lock failed (%s); reconnecting in %.1fs",
                          self.kind, self.where(), _one_line(exc), RETRY_DELAYS[failures])
                time.sleep(RETRY_DELAYS[failures])
                failures += 1
                continue
            except self.driver_errors as exc:
                raise StoreError(
                    f"{self.kind} store {self.where()}: cannot take its lock: {_one_line(exc)}"
                ) from exc
            if owner is not None:
                break
            if time.monotonic() >= deadline:
                raise ownership.in_use(self.kind, self.where(), self._prefix, holder)
            time.sleep(0.2)
        self._owner = owner
        if self.keeps_lock:
            self._keeper = ownership.Keeper(f"{self.kind}-lock", self._keep_lock)

    keeps_lock = True  # a server-side lock, re-checked by a Keeper thread

    def _keep_lock(self) -> str | None:
        owner = self._owner
        if owner is not None:
            try:
                self._lock_alive(owner)
                return None
            except self.driver_errors:
                self._owner = None
                self._release(owner)
        try:
            owner, holder = self._try_lock()
        except self.driver_errors as exc:
            return f"{self.kind} store {self.where()}: lock lost with its connection:" \
                   f" {_one_line(exc)}"
        if owner is None:
            log.error("%s store %s (prefix %s): another kalad (%s) took the lock while this"
                      " one was cut off: stop one of them", self.kind, self.where(),
                      self._prefix, holder)
            return f"another kalad ({holder}) holds the lock"
        if self._closed:
            self._release(owner)
        else:
            self._owner = owner
            log.info("%s store %s: lock connection was lost; lock taken again",
                     self.kind, self.where())
        return None

    # -- JobStore ----------------------------------------------------------------------

    def load(self) -> Loaded:
        rows = self._call(lambda cur: self._fetch(cur, self._sql["load"]), what="load")
        jobs, broken = [], []
        for key, data in rows:
            key = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
            try:
                job = decode_job(bytes(data))
            except StoreError as exc:
                broken.append((key, str(exc)))
                continue
            if job.id != key:
                broken.append((key, f"record holds job {job.id!r}, not the job of its key"))
                continue
            jobs.append(job)
        return Loaded(jobs=jobs, broken=broken)

    def apply(self, changes: Sequence[Change]) -> None:
        self._call(lambda cur: self._transaction(cur, self._apply_changes, changes), what="apply")

    def list_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        def read(cur: Any) -> list[Any]:
            if limit is None:
                return self._fetch(cur, self._sql["runs"], (job_id,))
            if limit <= 0:
                return []
            return self._fetch(cur, self._sql["newest_runs"], (job_id, limit))[::-1]

        rows = self._call(read, what="list_runs")
        return [run for run in (self._decode_run(row[0]) for row in rows) if run is not None]

    def prune_runs(self, older_than: datetime) -> int:
        cutoff = micros(older_than)

        def prune(cur: Any) -> int:
            cur.execute(self._sql["prune"], (cutoff,))
            return max(cur.rowcount, 0)

        return self._call(lambda cur: self._transaction(cur, prune), what="prune_runs")

    def ping(self) -> None:
        self._call(lambda cur: cur.execute("SELECT 1"), what="ping")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_connection()
        if self._keeper is not None:
            self._keeper.stop()
        if self._owner is not None:
            self._release(self._owner)
            self._owner = None
        log.debug("%s store %s: closed", self.kind, self.where())

    # -- the work ----------------------------------------------------------------------

    def _statements(self) -> dict[str, str]:
        p = self._prefix
        return {
            "load": f"SELECT id, data FROM {p}jobs",
            "put": self._upsert(f"{p}jobs", ("id",), ("data",)),
            "delete_job": f"DELETE FROM {p}jobs WHERE id = %s",
            "delete_runs": f"DELETE FROM {p}runs WHERE job_id = %s",
            "put_run": self._upsert(f"{p}runs", ("job_id", "started", "run_id"), ("ended", "data")),
            "runs": f"SELECT data FROM {p}runs WHERE job_id = %s ORDER BY started, run_id",
            "newest_runs": (
                f"SELECT data FROM {p}runs WHERE job_id = %s"
                " ORDER BY started DESC, run_id DESC LIMIT %s"
            ),
            "prune": f"DELETE FROM {p}runs WHERE ended < %s",
            "get_schema": f"SELECT value FROM {p}meta WHERE name = 'schema'",
            "set_schema": self._upsert(f"{p}meta", ("name",), ("value",)),
        }

    def _apply_changes(self, cur: Any, changes: Sequence[Change]) -> None:
        appended: set[str] = set()
        for change in changes:
            if change.put:
                cur.executemany(
                    self._sql["put"], [(check_job_id(j.id), encode_job(j)) for j in change.put]
                )
            if change.runs:
                cur.executemany(
                    self._sql["put_run"],
                    [
                        (check_job_id(r.job_id), micros(r.started_at), r.id,
                         micros(r.ended_at), encode_run(r))
                        for r in change.runs
                    ],
                )
                appended.update(r.job_id for r in change.runs)
            for job_id in change.delete:
                cur.execute(self._sql["delete_job"], (job_id,))
                cur.execute(self._sql["delete_runs"], (job_id,))
        # Trimming once at the end keeps the same runs as trimming after every append:
        # both keep the newest keep_runs of what is stored, and a delete empties a job.
        # One statement per TRIM_CHUNK jobs, not a round trip per job: a batch of the
        # group committer touches many jobs.
        touched = sorted(appended)
        for start in range(0, len(touched), TRIM_CHUNK):
            chunk = touched[start:start + TRIM_CHUNK]
            cur.execute(self._trim_statement(len(chunk)), (*chunk, self.keep_runs))

    def _trim_statement(self, count: int) -> str:
        """DELETE every run of ``count`` jobs but each job's newest ``keep_runs``."""
        statement = self._trims.get(count)
        if statement is None:
            statement = self._trims[count] = self._q(self._trim_sql(count))
        return statement

    def _trim_sql(self, count: int) -> str:
        p = self._prefix
        return (
            f"DELETE FROM {p}runs WHERE (job_id, started, run_id) IN ("
            f"SELECT job_id, started, run_id FROM ({self._ranked_runs(count)}) ranked"
            " WHERE n > %s)"
        )

    def _ranked_runs(self, count: int) -> str:
        """The runs of ``count`` jobs, each numbered from its newest (n = 1)."""
        return (
            "SELECT job_id, started, run_id, ROW_NUMBER() OVER (PARTITION BY job_id"
            f" ORDER BY started DESC, run_id DESC) AS n FROM {self._prefix}runs"
            f" WHERE job_id IN ({', '.join(['%s'] * count)})"
        )

    def _create_schema(self, cur: Any) -> None:
        def create(cur: Any) -> None:
            for statement in self._ddl():
                cur.execute(statement)
            cur.execute(self._sql["get_schema"])
            row = cur.fetchone()
            if row is None:
                cur.execute(self._sql["set_schema"], ("schema", str(SCHEMA)))
                return
            stored = row[0]
            if not str(stored).isdigit():
                raise StoreError(
                    f"{self.kind} store {self.where()} has an unreadable schema {stored!r}"
                )
            stored = int(stored)
            if stored > SCHEMA:
                raise StoreError(
                    f"{self.kind} store {self.where()} has schema {stored}, this kalad supports"
                    f" up to {SCHEMA}: upgrade kalad"
                )
            while stored < SCHEMA:
                for statement in UPGRADES[stored](self._prefix):
                    cur.execute(statement)
                stored += 1
                log.info("%s store %s: schema upgraded to %d", self.kind, self.where(), stored)
            cur.execute(self._sql["set_schema"], ("schema", str(stored)))

        self._transaction(cur, create)

    def _transaction(self, cur: Any, work: Callable[..., _T], *args: Any) -> _T:
        cur.execute(self.begin_sql)
        try:
            result = work(cur, *args)
            cur.execute("COMMIT")
            return result
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except Exception:  # the connection may be gone; the server rolls back then
                pass
            raise

    @staticmethod
    def _fetch(cur: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur.execute(sql, params)
        return cur.fetchall()

    def _call(self, work: Callable[[Any], _T], *, what: str) -> _T:
        """Run ``work(cursor)`` under the lock, reconnecting and retrying a lost connection."""
        lost = ""
        with self._lock:
            # Once unavailable, one attempt per call (no sleeps) until a call succeeds:
            # the committer retries with its own backoff, and reads fail fast.
            tries = 1 if self._unavailable else len(RETRY_DELAYS) + 1
            for attempt in range(tries):
                if self._closed:
                    raise StoreUnavailable(f"{self.kind} store {self.where()} is closed")
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    cur = self._conn.cursor()
                    try:
                        result = work(cur)
                    finally:
                        try:
                            cur.close()
                        except Exception:
                            pass
                    if lost:
                        log.info("%s store %s: connection lost during %s (%s); reconnected",
                                 self.kind, self.where(), what, lost)
                    self._unavailable = False
                    return result
                except self.lost_errors as exc:
                    if not self._is_lost(exc):
                        raise StoreError(
                            f"{self.kind} store {self.where()}: {what} failed: {_one_line(exc)}"
                        ) from exc
                    self._drop_connection()
                    if attempt == tries - 1:
                        self._unavailable = True
                        raise StoreUnavailable(
                            f"{self.kind} store {self.where()} unavailable ({what}):"
                            f" {_one_line(exc)}"
                        ) from exc
                    delay = RETRY_DELAYS[attempt]
                    lost = lost or _one_line(exc)
                    # DEBUG: the caller reports the outcome (the committer: once per outage).
                    log.debug(
                        "%s store %s: %s failed (%s); reconnecting in %.1fs",
                        self.kind, self.where(), what, _one_line(exc), delay,
                    )
                    time.sleep(delay)
                except self.driver_errors as exc:
                    raise StoreError(
                        f"{self.kind} store {self.where()}: {what} failed: {_one_line(exc)}"
                    ) from exc
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _q(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.qmark else sql

    def _decode_run(self, data: Any) -> Run | None:
        try:
            return decode_run(bytes(data))
        except StoreError as exc:
            log.warning(
                "%s store %s: skipping unreadable run record: %s", self.kind, self.where(), exc
            )
            return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def need_driver(kind: str, module: str, extra: str) -> StoreError:
    return StoreError(f"the {kind} backend needs {module}: pip install 'kalad[{extra}]'")


def split_host_port(hostport: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` into (host, port)."""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host, port = hostport, ""
    if port and not port.isdigit():
        raise ValueError(f"bad port in address {hostport!r}")
    return host or "127.0.0.1", int(port) if port else default_port
