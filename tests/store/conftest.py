"""The ``backend`` fixture: stores of any backend, each with its own tables / key prefix.

See ``tests/store/backends.py`` for the servers used and the skip-or-fail rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.store.backends import StoreFactory, require


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Callable[[str], StoreFactory]]:
    """``backend("postgres")``: a StoreFactory for that backend (skipped if unavailable)."""
    factories: list[StoreFactory] = []

    def make(kind: str) -> StoreFactory:
        require(kind)
        factory = StoreFactory(kind, tmp_path / f"{kind}{len(factories)}")
        factory.tmp_path.mkdir(parents=True, exist_ok=True)
        factories.append(factory)
        return factory

    yield make
    for factory in factories:
        factory.cleanup()
