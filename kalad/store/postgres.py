"""PostgresStore: the JobStore in PostgreSQL, through psycopg 3 (``pip install 'kalad[postgres]'``).

Tables as described in ``kalad.store.sql``; job and run ids are ``text COLLATE "C"`` so
runs sort by bytes as in LMDB, records are ``bytea``. Commits use the server's
``synchronous_commit`` (on by default: a commit is on the server's disk before
``apply`` returns). The connection is in autocommit mode with explicit
``BEGIN``/``COMMIT``; connects time out after 5 s and statements after 30 s
(``statement_timeout``), and TCP keepalives notice a dead server.

Address: ``host[:port]/db`` (``--jobdb-address``, with ``--jobdb-username`` and
``--jobdb-password``) or a URL ``postgresql://user:pw@host:port/db?sslmode=...``
(libpq's conninfo; username/password given separately override the URL's).

One daemon per database and prefix: the store holds ``pg_try_advisory_lock(LOCK_CLASS,
lock_key(prefix))`` on a connection of its own (``kalad-lock ...`` in
``pg_stat_activity``) while open (see ``kalad.store.ownership``).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from kalad.store import ownership, sql
from kalad.store.sql import SqlStore, split_host_port

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the install
    raise sql.need_driver("postgres", "psycopg", "postgres") from exc

DEFAULT_PORT = 5432
LOCK_CLASS = 0x6B616C61  # "kala": first key of the two-key advisory lock


def lock_key(prefix: str) -> int:
    """The advisory lock's second key: 31 bits of the prefix's hash."""
    return int.from_bytes(hashlib.sha256(prefix.encode()).digest()[:4], "big") & 0x7FFFFFFF


class PostgresStore(SqlStore):
    kind = "postgres"
    lost_errors = (psycopg.OperationalError, psycopg.InterfaceError)
    driver_errors = (psycopg.Error,)

    def _is_lost(self, exc: BaseException) -> bool:
        # statement_timeout is an OperationalError too, but retrying it would only wait again.
        return not isinstance(exc, psycopg.errors.QueryCanceled)

    def __init__(
        self,
        address: str,
        *,
        username: str | None = None,
        password: str | None = None,
        keep_runs: int = 1000,
        prefix: str = "kalad_",
        exclusive: bool = True,
    ) -> None:
        self._params = parse_address(address, username, password)
        self._prefix = prefix
        super().__init__(keep_runs=keep_runs, prefix=prefix, exclusive=exclusive)

    def where(self) -> str:
        p = self._params
        return f"{p.get('host', 'localhost')}:{p.get('port', DEFAULT_PORT)}/{p.get('dbname', '')}"

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (for tests and diagnostics)."""
        return None if self._conn is None else self._conn.info.backend_pid

    def _connect(self, role: str = "") -> Any:
        params = dict(self._params)
        conninfo = params.pop("conninfo", "")
        # The name shows in pg_stat_activity: which daemon, which tables, which role.
        name = f"kalad{role} {self._prefix} {ownership.holder_name()}"
        return psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=sql.CONNECT_TIMEOUT,
            options=f"-c statement_timeout={sql.STATEMENT_TIMEOUT * 1000}",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            application_name=name[:63],
            **params,
        )

    def _try_lock(self) -> tuple[Any, str]:
        conn = self._connect("-lock")
        try:
            key = (LOCK_CLASS, lock_key(self._prefix))
            if conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
                return conn, ""
            row = conn.execute(
                "SELECT a.application_name, host(a.client_addr) FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
                "SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND l.classid = %s AND l.objid = %s AND l.objsubid = 2",
                key,
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        conn.close()
        if row is None:
            return None, ""
        name, addr = row
        return None, f"{name.partition(' ' + self._prefix + ' ')[2] or name}" + (
            f", connected from {addr}" if addr else "")

    def _lock_alive(self, owner: Any) -> None:
        owner.execute("SELECT 1")

    def _ddl(self) -> list[str]:
        p = self._prefix
        return [
            # Two daemons creating the schema at once would collide in the catalog.
            f"SELECT pg_advisory_xact_lock(hashtext('{p}schema'))",
            f"CREATE TABLE IF NOT EXISTS {p}meta (name text PRIMARY KEY, value text NOT NULL)",
            f'CREATE TABLE IF NOT EXISTS {p}jobs (id text COLLATE "C" PRIMARY KEY,'
            " data bytea NOT NULL)",
            f'CREATE TABLE IF NOT EXISTS {p}runs (job_id text COLLATE "C" NOT NULL,'
            ' started bigint NOT NULL, run_id text COLLATE "C" NOT NULL,'
            " ended bigint NOT NULL, data bytea NOT NULL,"
            " PRIMARY KEY (job_id, started, run_id))",
            f"CREATE INDEX IF NOT EXISTS {p}runs_ended ON {p}runs (ended)",
        ]

    def _upsert(self, table: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
        columns = key + values
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
        return (
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join(['%s'] * len(columns))})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )


def parse_address(address: str, username: str | None, password: str | None) -> dict[str, Any]:
    """psycopg connect arguments for ``host[:port]/db`` or a ``postgres[ql]://`` URL."""
    params: dict[str, Any] = {}
    if "://" in address:
        if urlsplit(address).scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a PostgreSQL URL: {address!r}")
        params["conninfo"] = address
        parts = urlsplit(address)
        if parts.hostname:
            params["host"] = parts.hostname
        if parts.port:
            params["port"] = parts.port
        if parts.path.strip("/"):
            params["dbname"] = parts.path.strip("/")
        if parts.username and username is None:
            params["user"] = parts.username
        if parts.password and password is None:
            params["password"] = parts.password
    else:
        hostport, _, db = address.partition("/")
        host, port = split_host_port(hostport, DEFAULT_PORT)
        params.update(host=host, port=port)
        if db:
            params["dbname"] = db
    if username is not None:
        params["user"] = username
    if password is not None:
        params["password"] = password
    return params
