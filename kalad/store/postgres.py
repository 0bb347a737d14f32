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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kalad.store import sql
from kalad.store.sql import SqlStore, split_host_port

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the install
    raise sql.need_driver("postgres", "psycopg", "postgres") from exc

DEFAULT_PORT = 5432


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
    ) -> None:
        self._params = parse_address(address, username, password)
        super().__init__(keep_runs=keep_runs, prefix=prefix)

    def where(self) -> str:
        p = self._params
        return f"{p.get('host', 'localhost')}:{p.get('port', DEFAULT_PORT)}/{p.get('dbname', '')}"

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (for tests and diagnostics)."""
        return None if self._conn is None else self._conn.info.backend_pid

    def _connect(self) -> Any:
        params = dict(self._params)
        conninfo = params.pop("conninfo", "")
        return psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=sql.CONNECT_TIMEOUT,
            options=f"-c statement_timeout={sql.STATEMENT_TIMEOUT * 1000}",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            application_name="kalad",
            **params,
        )

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
