"""``prctl(2)``: the Linux process and thread settings kalad changes, through ctypes."""

from __future__ import annotations

import ctypes
import errno
import os

PR_SET_TIMERSLACK = 29  # this thread's timer slack, in nanoseconds
PR_SET_CHILD_SUBREAPER = 36  # orphaned descendants are re-parented to this process

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    """Set ``option`` to ``value``; ``OSError`` when the kernel refuses or has no prctl."""
    call = getattr(_libc, "prctl", None)
    if call is None:
        raise OSError(errno.ENOSYS, "prctl is not available on this system")
    if call(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
