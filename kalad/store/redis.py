"""RedisStore: the JobStore in Redis, through redis-py (``pip install 'kalad[redis]'``).

Keys, each starting with the store's prefix (default ``kalad_``):

* ``<p>meta``: hash, field ``schema`` = the schema number;
* ``<p>jobs``: hash, job id -> job record (the codec's bytes);
* ``<p>runs:<job id>``: sorted set, every score 0, member = 8-byte start stamp
  (offset binary, big-endian) + run id, so lexical order is start order then id;
* ``<p>rundata:<job id>``: hash, member -> run record;
* ``<p>ended``: sorted set over all runs, score = end time in microseconds,
  member = job id + NUL + member, for ``prune_runs``.

``apply`` reads the run sets it touches, works out the result (retention
included) and writes it in one MULTI/EXEC, so other clients see all of it or none.
Writers (``apply``, ``prune_runs``) are serialized by a lock; reads run alongside.
A lost connection is retried a few times with backoff (DEBUG; a reconnect at INFO),
then ``StoreUnavailable``; sockets time out (5 s connect, 30 s per command).

Durability is the Redis server's: EXEC returning means the change is in the
server's memory only. With ``appendonly yes`` + ``appendfsync always`` it is on disk
before ``apply`` returns; with the defaults (RDB snapshots) the last changes may be
lost when the server stops; with ``--save ""`` and no AOF (as on the test machine)
nothing survives a server restart. Configure the server for what you need.

One daemon per database and prefix: the store sets ``<p>lock`` with ``SET NX PX``
(``ownership.LOCK_TTL``, 15 s) and refreshes it every 5 s; a second daemon is refused
while it is there. A daemon killed with -9 leaves it until it expires, so a restart
right after such a crash is refused for up to 15 s; after expiry any daemon may take
it over (see ``kalad.store.ownership``).

Address: ``host[:port][/db]`` (with ``--jobdb-username``/``--jobdb-password``) or a
URL ``redis://[user:pw@]host:port/db`` (``rediss://`` for TLS, ``unix://``).
"""

from __future__ import annotations

import logging
import re
import secrets
import struct
import threading
import time
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.ports import Change, Loaded
from kalad.core.runs import Run
from kalad.store import ownership, sql
from kalad.store.codec import decode_job, decode_run, encode_job, encode_run, micros

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the install
    raise sql.need_driver("redis", "redis", "redis") from exc

log = logging.getLogger(__name__)

SCHEMA = 1
DEFAULT_PORT = 6379
_PRUNE_BATCH = 5_000
_STAMP = struct.Struct(">Q")
_STAMP_BIAS = 1 << 63
_LOST = (redis.ConnectionError, redis.TimeoutError)
_T = TypeVar("_T")


class RedisStore:
    """JobStore on one Redis database; the client's pool gives each thread a connection."""

    kind = "redis"

    def __init__(
        self,
        address: str = "127.0.0.1:6379",
        *,
        username: str | None = None,
        password: str | None = None,
        keep_runs: int = 1000,
        prefix: str = "kalad_",
        client_name: str | None = None,
        exclusive: bool = True,
    ) -> None:
        if keep_runs < 0:
            raise ValueError("keep_runs must be 0 or more")
        self.keep_runs = keep_runs
        self._prefix = prefix.encode("utf-8")
        self._meta = self._prefix + b"meta"
        self._jobs = self._prefix + b"jobs"
        self._ended = self._prefix + b"ended"
        self._write_lock = threading.Lock()
        self._closed = False
        self._unavailable = False  # the last call gave up on the server
        self._lock_key = self._prefix + b"lock"
        self._token = f"{ownership.holder_name()} {secrets.token_hex(8)}".encode()
        self._keeper: ownership.Keeper | None = None
        options: dict[str, Any] = dict(
            socket_timeout=sql.STATEMENT_TIMEOUT,
            socket_connect_timeout=sql.CONNECT_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),  # we retry ourselves, with logging
            client_name=client_name or "kalad-" + re.sub(r"[^\w:.-]", "_", prefix),
        )
        self.client_name = options["client_name"]
        if username is not None:
            options["username"] = username
        if password is not None:
            options["password"] = password
        if "://" in address:
            self._where = address.split("@")[-1]
            self._client = redis.Redis.from_url(address, **options)
        else:
            hostport, _, db = address.partition("/")
            host, port = sql.split_host_port(hostport, DEFAULT_PORT)
            if db and not db.isdigit():
                raise ValueError(f"redis database must be a number, not {db!r}")
            self._where = f"{host}:{port}/{db or 0}"
            self._client = redis.Redis(host=host, port=port, db=int(db or 0), **options)
        try:
            if exclusive:
                self._take_ownership()
            self._call(self._check_schema, what="open")
        except BaseException:
            self.close()
            raise

    def where(self) -> str:
        return self._where

    # -- JobStore ----------------------------------------------------------------------

    def load(self) -> Loaded:
        records = self._call(lambda r: dict(r.hscan_iter(self._jobs, count=1000)), what="load")
        jobs, broken = [], []
        for key, value in records.items():
            name = key.decode("utf-8", "backslashreplace")
            try:
                job = decode_job(value)
            except StoreError as exc:
                broken.append((name, str(exc)))
                continue
            if job.id.encode("utf-8", "surrogatepass") != key:
                broken.append((name, f"record holds job {job.id!r}, not the job of its key"))
                continue
            jobs.append(job)
        return Loaded(jobs=jobs, broken=broken)

    def apply(self, changes: Sequence[Change]) -> None:
        with self._write_lock:
            self._call(lambda r: self._apply(r, changes), what="apply")

    def list_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        def read(r: redis.Redis) -> list[Any]:
            if limit is not None and limit <= 0:
                return []
            key = _id(job_id)
            members = r.zrange(self._runs_key(key), -limit if limit else 0, -1)
            if not members:
                return []
            return r.hmget(self._data_key(key), members)

        values = self._call(read, what="list_runs")
        runs = []
        for value in values:
            if value is None:  # pruned between the two reads
                continue
            try:
                runs.append(decode_run(value))
            except StoreError as exc:
                log.warning("redis store %s: skipping unreadable run record: %s", self._where, exc)
        return runs

    def prune_runs(self, older_than: datetime) -> int:
        cutoff = micros(older_than)
        pruned = 0
        while True:
            with self._write_lock:
                deleted = self._call(lambda r: self._prune_batch(r, cutoff), what="prune_runs")
            pruned += deleted
            if deleted < _PRUNE_BATCH:
                return pruned

    def ping(self) -> None:
        self._call(lambda r: r.ping(), what="ping")

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
        if self._keeper is not None:
            self._keeper.stop()
            try:
                self._client.eval(_RELEASE, 1, self._lock_key, self._token)
            except redis.RedisError:
                pass  # it expires by itself
        try:
            self._client.close()
        except Exception:
            pass

    # -- one daemon per store ----------------------------------------------------------

    def _take_ownership(self) -> None:
        ttl = int(ownership.LOCK_TTL * 1000)
        if not self._call(lambda r: r.set(self._lock_key, self._token, nx=True, px=ttl),
                          what="lock"):
            holder, left = self._call(
                lambda r: (r.get(self._lock_key), r.pttl(self._lock_key)), what="lock")
            text = (holder or b"").decode("utf-8", "replace").rsplit(" ", 1)[0]
            if left and left > 0:
                text += f"; if it is gone, the lock expires in {left / 1000:.0f}s"
            raise ownership.in_use("redis", self._where, self._prefix.decode(), text)
        self._keeper = ownership.Keeper(
            "redis-lock", self._keep_lock, every=ownership.LOCK_TTL / 3)

    def _keep_lock(self) -> str | None:
        ttl = int(ownership.LOCK_TTL * 1000)
        try:
            kept = self._client.eval(_REFRESH, 1, self._lock_key, self._token, ttl)
        except redis.RedisError as exc:
            return f"redis store {self._where}: cannot refresh its lock: {exc}"
        if kept == 2:
            log.warning("redis store %s: the lock had expired (cut off for over %gs); taken again",
                        self._where, ownership.LOCK_TTL)
        if kept == 0:
            holder = self._client.get(self._lock_key) or b""
            log.error("redis store %s (prefix %s): another kalad (%s) took the lock after it"
                      " expired: stop one of them", self._where, self._prefix.decode(),
                      holder.decode("utf-8", "replace").rsplit(" ", 1)[0])
            return "another kalad holds the lock"
        return None

    # -- the work ----------------------------------------------------------------------

    def _check_schema(self, r: redis.Redis) -> None:
        r.hsetnx(self._meta, "schema", str(SCHEMA))
        stored = r.hget(self._meta, "schema")
        if stored is None or not stored.isdigit():
            raise StoreError(f"redis store {self._where} has an unreadable schema {stored!r}")
        if int(stored) > SCHEMA:
            raise StoreError(
                f"redis store {self._where} has schema {int(stored)}, this kalad supports"
                f" up to {SCHEMA}: upgrade kalad"
            )
        # Older schemas would be upgraded here; schema 1 is the first.

    def _apply(self, r: redis.Redis, changes: Sequence[Change]) -> None:
        touched: list[bytes] = []
        seen: set[bytes] = set()
        for change in changes:
            for job_id in [run.job_id for run in change.runs] + list(change.delete):
                key = _id(job_id)
                if key not in seen:
                    seen.add(key)
                    touched.append(key)
        reads = r.pipeline(transaction=False)
        for key in touched:
            reads.zrange(self._runs_key(key), 0, -1)
        before = dict(zip(touched, (set(m) for m in reads.execute()))) if touched else {}
        after = {key: set(members) for key, members in before.items()}
        written: dict[bytes, dict[bytes, tuple[int, bytes]]] = {key: {} for key in touched}
        jobs: dict[bytes, bytes | None] = {}
        for change in changes:
            for job in change.put:
                jobs[_id(job.id)] = encode_job(job)
            for run in change.runs:
                key = _id(run.job_id)
                member = _STAMP.pack(micros(run.started_at) + _STAMP_BIAS) + _raw(run.id)
                after[key].add(member)
                written[key][member] = (micros(run.ended_at), encode_run(run))
            for job_id in change.delete:
                key = _id(job_id)
                jobs[key] = None
                after[key].clear()
                written[key].clear()
        tx = r.pipeline(transaction=True)
        puts = {key: data for key, data in jobs.items() if data is not None}
        deletes = [key for key, data in jobs.items() if data is None]
        if puts:
            tx.hset(self._jobs, mapping=puts)
        if deletes:
            tx.hdel(self._jobs, *deletes)
        for key in touched:
            kept = sorted(after[key])
            if len(kept) > self.keep_runs:
                kept = kept[len(kept) - self.keep_runs:]
            kept_set = set(kept)
            removed = [m for m in before[key] if m not in kept_set]
            added = {m: v for m, v in written[key].items() if m in kept_set}
            runs_key, data_key = self._runs_key(key), self._data_key(key)
            if removed:
                tx.zrem(runs_key, *removed)
                tx.hdel(data_key, *removed)
                tx.zrem(self._ended, *(key + b"\x00" + m for m in removed))
            if added:
                tx.zadd(runs_key, {m: 0 for m in added})
                tx.hset(data_key, mapping={m: v[1] for m, v in added.items()})
                tx.zadd(self._ended, {key + b"\x00" + m: v[0] for m, v in added.items()})
        if len(tx):
            tx.execute()

    def _prune_batch(self, r: redis.Redis, cutoff: int) -> int:
        # ZRANGEBYSCORE with an exclusive maximum: ended < cutoff.
        entries = r.zrangebyscore(self._ended, "-inf", f"({cutoff}", start=0, num=_PRUNE_BATCH)
        if not entries:
            return 0
        tx = r.pipeline(transaction=True)
        tx.zrem(self._ended, *entries)
        for entry in entries:
            key, _, member = entry.partition(b"\x00")
            tx.zrem(self._runs_key(key), member)
            tx.hdel(self._data_key(key), member)
        tx.execute()
        return len(entries)

    def _runs_key(self, key: bytes) -> bytes:
        return self._prefix + b"runs:" + key

    def _data_key(self, key: bytes) -> bytes:
        return self._prefix + b"rundata:" + key

    def _call(self, work: Callable[[redis.Redis], _T], *, what: str) -> _T:
        delays = sql.RETRY_DELAYS
        lost = ""
        # Once unavailable, one attempt per call until one succeeds (as in SqlStore).
        tries = 1 if self._unavailable else len(delays) + 1
        for attempt in range(tries):
            if self._closed:
                raise StoreUnavailable(f"redis store {self._where} is closed")
            try:
                result = work(self._client)
                if lost:
                    log.info("redis store %s: connection lost during %s (%s); reconnected",
                             self._where, what, lost)
                self._unavailable = False
                return result
            except _LOST as exc:
                if attempt == tries - 1:
                    self._unavailable = True
                    raise StoreUnavailable(
                        f"redis store {self._where} unavailable ({what}): {exc}"
                    ) from exc
                lost = lost or str(exc)
                log.debug(
                    "redis store %s: %s failed (%s); reconnecting in %.1fs",
                    self._where, what, exc, delays[attempt],
                )
                time.sleep(delays[attempt])
            except redis.RedisError as exc:
                raise StoreError(f"redis store {self._where}: {what} failed: {exc}") from exc
        raise AssertionError("unreachable")


# Refresh the lock if it is ours (1), take it again if it expired (2), else 0.
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _id(job_id: str) -> bytes:
    key = _raw(job_id)
    if not key or b"\x00" in key:
        raise StoreError(f"job id {job_id!r} cannot be stored: it must be non-empty, without NUL")
    return key
