"""The job stores: ``open_store`` picks a backend by name and imports only that one.

Each backend implements ``kalad.core.ports.JobStore``; its driver is imported lazily,
so a daemon using LMDB never loads the drivers of the others.

``--jobdb`` / ``--jobdb-address`` forms (``address`` here), either form accepted:

=========== ===================== =========================================
kind        address               URL form
=========== ===================== =========================================
lmdb        (``lmdb_path``)       ``lmdb:///var/lib/kalad``
memory      --                    ``memory:``
sqlite      a file path           ``sqlite:///var/lib/kalad/kalad.db``
postgres    ``host[:port]/db``    ``postgresql://user:pw@host:port/db``
mysql       ``host[:port]/db``    ``mysql://user:pw@host:port/db``
mariadb     (same as mysql)       ``mariadb://user:pw@host:port/db``
redis       ``host[:port][/n]``   ``redis://[user:pw@]host:port/n``
=========== ===================== =========================================

``username``/``password`` (``--jobdb-username``/``--jobdb-password``) override a URL's.
SQLite without an address uses ``<lmdb_path>/kalad.db``.
``prefix`` names the tables (or Redis keys): ``<prefix>jobs``, ``<prefix>runs``, ...
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from kalad.core.errors import StoreError
from kalad.core.ports import JobStore

KINDS = ("lmdb", "mariadb", "memory", "mysql", "postgres", "redis", "sqlite")

_DEFAULT_ADDRESS = {
    "postgres": "127.0.0.1:5432/kalad",
    "mysql": "127.0.0.1:3306/kalad",
    "redis": "127.0.0.1:6379",
}
_SCHEMES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "sqlite": "sqlite",
    "lmdb": "lmdb",
    "memory": "memory",
}


def open_store(
    kind: str,
    *,
    lmdb_path: str | None = None,
    keep_runs: int = 1000,
    address: str | None = None,
    username: str | None = None,
    password: str | None = None,
    prefix: str = "kalad_",
    exclusive: bool = True,
) -> JobStore:
    """Open the store named ``kind``; ``StoreError`` if it cannot be opened.

    ``exclusive`` (the default) takes the store's lock for as long as it is open, so
    a second daemon (or ``copy-store``) on the same store is refused: see
    ``kalad.store.ownership``. LMDB is always exclusive. A SQLite store without
    ``address`` is ``<lmdb_path>/kalad.db`` (the directory made 0700 if missing).
    """
    if kind == "memory":
        from kalad.store.memory import MemoryStore

        return MemoryStore(keep_runs=keep_runs)
    if kind == "lmdb":
        if lmdb_path is None:
            raise ValueError("the lmdb store needs lmdb_path")
        from kalad.store.lmdb import LmdbStore

        return LmdbStore(lmdb_path, keep_runs=keep_runs)
    if kind == "sqlite":
        if not address:
            if lmdb_path is None:
                raise ValueError("the sqlite store needs --jobdb-address: a file path")
            address = default_sqlite_path(lmdb_path)
        from kalad.store.sqlite import SqliteStore

        return SqliteStore(address, keep_runs=keep_runs, prefix=prefix, exclusive=exclusive)
    if kind in ("postgres", "postgresql"):
        from kalad.store.postgres import PostgresStore

        return PostgresStore(
            address or _DEFAULT_ADDRESS["postgres"],
            username=username, password=password, keep_runs=keep_runs, prefix=prefix,
            exclusive=exclusive,
        )
    if kind in ("mysql", "mariadb"):
        from kalad.store.mysql import MysqlStore

        return MysqlStore(
            address or _DEFAULT_ADDRESS["mysql"],
            username=username, password=password, keep_runs=keep_runs, prefix=prefix,
            exclusive=exclusive,
        )
    if kind == "redis":
        from kalad.store.redis import RedisStore

        return RedisStore(
            address or _DEFAULT_ADDRESS["redis"],
            username=username, password=password, keep_runs=keep_runs, prefix=prefix,
            exclusive=exclusive,
        )
    raise ValueError(f"unknown store {kind!r}: choose one of {', '.join(KINDS)}")


def default_sqlite_path(lmdb_path: str) -> str:
    """``<lmdb_path>/kalad.db``, making the directory (0700) if it is missing."""
    try:
        os.makedirs(lmdb_path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create store directory {lmdb_path}: {exc.strerror}") from None
    else:
        os.chmod(lmdb_path, 0o700)  # mkdir's mode is filtered by the umask
    return os.path.join(lmdb_path, "kalad.db")


def open_url(
    url: str, *, keep_runs: int = 1000, prefix: str = "kalad_", exclusive: bool = True,
    **options: str,
) -> JobStore:
    """Open the store a URL names: ``postgresql://...``, ``lmdb:///dir``, ``memory:`` ...

    A plain path (no scheme) is an LMDB directory.
    """
    scheme = urlsplit(url).scheme if ":" in url else ""
    if not scheme:
        return open_store("lmdb", lmdb_path=url, keep_runs=keep_runs)
    kind = _SCHEMES.get(scheme.lower())
    if kind is None:
        raise ValueError(f"unknown store URL scheme {scheme!r} in {url!r}")
    if kind == "lmdb":
        return open_store("lmdb", lmdb_path=url[len("lmdb://"):], keep_runs=keep_runs)
    if kind == "memory":
        return open_store("memory", keep_runs=keep_runs)
    return open_store(kind, address=url, keep_runs=keep_runs, prefix=prefix,
                      exclusive=exclusive, **options)
