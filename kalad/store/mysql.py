"""MysqlStore: the JobStore in MariaDB or MySQL (InnoDB), through PyMySQL (``kalad[mysql]``).

Tables as described in ``kalad.store.sql``; ids are ``VARBINARY(767)`` (compared
by bytes, no trailing-space padding, so ``"a"`` and ``"a "`` stay two jobs) and
records ``LONGBLOB``. Durability is InnoDB's: with the default
``innodb_flush_log_at_trx_commit=1`` a commit is on the server's disk before
``apply`` returns. Autocommit is on with explicit ``START TRANSACTION``/``COMMIT``
(so reads see fresh data); connects time out after 5 s, reads and writes on the
socket after 30 s, lock waits after 30 s.

Address: ``host[:port]/db`` (with ``--jobdb-username``/``--jobdb-password``) or a
URL ``mysql://user:pw@host:port/db`` (``mariadb://`` is the same).

One daemon per database and prefix: the store holds ``GET_LOCK('kalad:<hash of db and
prefix>', 0)`` on a connection of its own while open (see ``kalad.store.ownership``).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import unquote, urlsplit

from kalad.store import sql
from kalad.store.sql import SqlStore, split_host_port

try:
    import pymysql
except ImportError as exc:  # pragma: no cover - depends on the install
    raise sql.need_driver("mysql", "PyMySQL", "mysql") from exc

DEFAULT_PORT = 3306


class MysqlStore(SqlStore):
    kind = "mysql"
    begin_sql = "START TRANSACTION"
    lost_errors = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
    driver_errors = (pymysql.err.Error,)

    def _is_lost(self, exc: BaseException) -> bool:
        # Access denied / unknown database / query interrupted: retrying will not help.
        code = exc.args[0] if exc.args else None
        return code not in (1044, 1045, 1049, 1317, 3024, 1969)

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
        return f"{p['host']}:{p['port']}/{p.get('database', '')}"

    @property
    def thread_id(self) -> int | None:
        """The server's id of the current connection (for tests and diagnostics)."""
        return None if self._conn is None else self._conn.thread_id()

    def _connect(self) -> Any:
        return pymysql.connect(
            **self._params,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=sql.CONNECT_TIMEOUT,
            read_timeout=sql.STATEMENT_TIMEOUT,
            write_timeout=sql.STATEMENT_TIMEOUT,
            init_command=f"SET SESSION innodb_lock_wait_timeout = {sql.STATEMENT_TIMEOUT}",
        )

    def _lock_name(self) -> str:
        # GET_LOCK names are server-wide (64 characters at most): name the database too.
        digest = hashlib.sha256(
            f"{self._params.get('database', '')}\0{self._prefix}".encode()).hexdigest()
        return f"kalad:{digest[:40]}"

    def _try_lock(self) -> tuple[Any, str]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0)", (self._lock_name(),))
                if cur.fetchone()[0] == 1:
                    return conn, ""
                cur.execute(
                    "SELECT p.ID, p.HOST FROM information_schema.PROCESSLIST p"
                    " WHERE p.ID = IS_USED_LOCK(%s)", (self._lock_name(),))
                row = cur.fetchone()
        except BaseException:
            conn.close()
            raise
        conn.close()
        return None, f"connection {row[0]} from {row[1]}" if row else ""

    def _lock_alive(self, owner: Any) -> None:
        with owner.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self._lock_name(),))
            if cur.fetchone()[0] != 1:
                raise pymysql.err.OperationalError(2013, "the lock connection lost its lock")

    def _trim_sql(self, count: int) -> str:
        # MariaDB cannot DELETE from a table its WHERE subquery reads; a join on the
        # (materialized) ranking can.
        p = self._prefix
        return (
            f"DELETE r FROM {p}runs AS r JOIN ({self._ranked_runs(count)}) AS ranked"
            " ON r.job_id = ranked.job_id AND r.started = ranked.started"
            " AND r.run_id = ranked.run_id WHERE ranked.n > %s"
        )

    def _ddl(self) -> list[str]:
        p = self._prefix
        return [
            f"CREATE TABLE IF NOT EXISTS {p}meta (name VARCHAR(64) NOT NULL PRIMARY KEY,"
            " value VARCHAR(255) NOT NULL) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {p}jobs (id VARBINARY(767) NOT NULL PRIMARY KEY,"
            " data LONGBLOB NOT NULL) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {p}runs (job_id VARBINARY(767) NOT NULL,"
            " started BIGINT NOT NULL, run_id VARBINARY(767) NOT NULL,"
            " ended BIGINT NOT NULL, data LONGBLOB NOT NULL,"
            f" PRIMARY KEY (job_id, started, run_id), KEY {p}runs_ended (ended)) ENGINE=InnoDB",
        ]

    def _upsert(self, table: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
        columns = key + values
        updates = ", ".join(f"{c} = VALUES({c})" for c in values)
        return (
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join(['%s'] * len(columns))})"
            f" ON DUPLICATE KEY UPDATE {updates}"
        )


def parse_address(address: str, username: str | None, password: str | None) -> dict[str, Any]:
    """PyMySQL connect arguments for ``host[:port]/db`` or a ``mysql://``/``mariadb://`` URL."""
    params: dict[str, Any] = {}
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError(f"not a MySQL URL: {address!r}")
        params.update(host=parts.hostname or "127.0.0.1", port=parts.port or DEFAULT_PORT)
        db = parts.path.strip("/")
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
    else:
        hostport, _, db = address.partition("/")
        params["host"], params["port"] = split_host_port(hostport, DEFAULT_PORT)
    if db:
        params["database"] = db
    if username is not None:
        params["user"] = username
    if password is not None:
        params["password"] = password
    return params
