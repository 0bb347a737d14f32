"""App-level statistics, Kala's ``GET /stats/`` figures, as one value object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AppStats:
    active_jobs: int
    disabled_jobs: int
    jobs: int
    error_count: int
    success_count: int
    next_run_at: datetime | None  # earliest upcoming run of an enabled, unfinished job
    last_attempted_run: datetime | None
    created: datetime  # when these figures were computed (Kala's meaning)
