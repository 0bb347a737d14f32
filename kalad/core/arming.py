"""When a job's next run is due, and which occurrences were missed on the way.

One rule serves every case where the scheduler looks at a job's pending
occurrence: at creation, when the timer fires, when a run ends, on enable and at
start-up after downtime. An occurrence that is not in the past is simply due. Past
ones were missed: by default the latest of them runs once now (one catch-up run,
Kala's behaviour) and the earlier ones are coalesced into it; with
``resume_at_next_scheduled_time``, or when the latest is more than ``epsilon``
late, none runs and the job waits for the next grid point. The caller records
every missed occurrence, so none disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kalad.core.schedule import Schedule


@dataclass(frozen=True, slots=True)
class Arming:
    scheduled_at: datetime | None  # occurrence to run next (may be past: run now); None: done
    missed: int = 0  # occurrences skipped to get there
    missed_from: datetime | None = None  # the first and last of them
    missed_to: datetime | None = None


def arm(
    schedule: Schedule,
    pending: datetime | None,
    now: datetime,
    *,
    resume: bool = False,
    epsilon: timedelta | None = None,
) -> Arming:
    """Decide the next run given ``pending``, the earliest occurrence not yet fired."""
    if pending is None:
        return Arming(None)
    if pending >= now:
        return Arming(pending)
    count, latest = schedule.occurrences_between(pending, now)
    if count == 0 or latest is None:
        return Arming(schedule.first_at_or_after(now))
    if resume or (epsilon is not None and now - latest > epsilon):
        return Arming(schedule.first_at_or_after(now), count, pending, latest)
    if count == 1:
        return Arming(latest)
    _, before_latest = schedule.occurrences_between(pending, latest)
    return Arming(latest, count - 1, pending, before_latest)
