"""Jobs' encoded JSON, kept while a job is unchanged.

Listing 10,000 jobs must not re-read 10,000 jobs' runs from the store and encode
them again on every request. Jobs are frozen and the service replaces the object on
every change, and every executed run changes the job's counters, so an entry made
for the same object holds the same JSON, ``stats`` included. The one change that
does not replace the job, retention dropping old runs, bumps the service's
``runs_generation``, which every entry is checked against. Bounded by total bytes,
the least recently used go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from kalad.api.kala_json import dumps, job_to_wire
from kalad.core.errors import StoreError
from kalad.core.job import Job
from kalad.service import Service

MAX_BYTES = 64 * 1024 * 1024


class WireCache:
    def __init__(self, service: Service, max_bytes: int = MAX_BYTES) -> None:
        self._service = service
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Job, int, bytes]] = OrderedDict()

    def encoded(self, job: Job) -> bytes:
        """The job in Kala's wire format, with its recent runs as ``stats``, as JSON.

        Raises ``JobNotFound`` when the job was deleted meanwhile.
        """
        generation = self._service.runs_generation
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None and entry[0] is job and entry[1] == generation:
                self._entries.move_to_end(job.id)
                return entry[2]
        try:
            runs = self._service.recent_runs(job.id)
        except StoreError:
            # The store is down: the job itself is in memory. Kala's job holds no runs
            # then (stats: null) rather than the listing failing half-way; not cached.
            return dumps(job_to_wire(job, None)).rstrip(b"\n")
        data = dumps(job_to_wire(job, runs)).rstrip(b"\n")
        with self._lock:
            old = self._entries.pop(job.id, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._entries[job.id] = (job, generation, data)
            self._bytes += len(data)
            while self._bytes > self._max_bytes and self._entries:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
        return data
