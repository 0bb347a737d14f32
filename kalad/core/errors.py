"""The exception tree every layer raises and the API maps to statuses in one place.

Each error subclasses the builtin it refines, so plain ``except LookupError`` code
keeps working, and carries a message that names the field, id or value at fault.
"""


class KaladError(Exception):
    """Base of every error kalad raises on purpose."""


class InvalidJob(KaladError, ValueError):
    """A job definition (or a change to one) breaks a rule; the message names the field."""


class InvalidSchedule(InvalidJob):
    """The ``schedule`` or ``epsilon`` text is not a valid ISO 8601 value."""


class JobNotFound(KaladError, LookupError):
    """No job has the given id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class StoreError(KaladError):
    """The job store cannot read or write; nothing was changed."""


class StoreUnavailable(StoreError):
    """The store is closed or unreachable right now; the caller may retry later."""
