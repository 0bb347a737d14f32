"""The job stores: ``open_store`` picks a backend by name and imports only that one.

Each backend implements ``kalad.core.ports.JobStore``; its driver is imported lazily,
so a daemon using LMDB never loads the drivers of the others.
"""

from __future__ import annotations

from kalad.core.ports import JobStore

KINDS = ("lmdb", "memory")


def open_store(kind: str, *, lmdb_path: str | None = None, keep_runs: int = 1000) -> JobStore:
    """Open the store named ``kind``; ``StoreError`` if it cannot be opened."""
    if kind == "memory":
        from kalad.store.memory import MemoryStore

        return MemoryStore(keep_runs=keep_runs)
    if kind == "lmdb":
        if lmdb_path is None:
            raise ValueError("the lmdb store needs lmdb_path")
        from kalad.store.lmdb import LmdbStore

        return LmdbStore(lmdb_path, keep_runs=keep_runs)
    raise ValueError(f"unknown store {kind!r}: choose one of {', '.join(KINDS)}")
