"""``Spawner``: glibc's posix_spawn called through ctypes, so the GIL is released.

``os.posix_spawn`` holds the GIL for the whole vfork and exec: every other thread of
the daemon (the timer, the API, the store writer) stops while the kernel loads the
child, and spawning from several threads gains nothing. Measured here: /bin/true
from 4 threads, 540-680 spawns/s with ``os.posix_spawn`` against 900-1450/s this
way. ctypes drops the GIL around foreign calls, so the same libc call lets the rest
of kalad run meanwhile. The child is set up exactly as before: a new session,
stdin from /dev/null, stdout and stderr into one pipe, an empty signal mask and
default dispositions.

Every foreign call drops and retakes the GIL, which under load means a hand-off to
another thread and back. So a spawn makes one: the file actions for an output
descriptor are built once and kept (pipe descriptors are reused, so there are few),
and the encoded argv, the same from run to run, is cached. An attempt's environment
is its own few entries over the daemon's (a ``ChainMap``): that base is encoded once
and kept, and the run's own entries (its id and instant are new every run) are
encoded as they come.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# glibc's flag values (spawn.h); POSIX_SPAWN_SETSID is a GNU extension.
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80

# Opaque glibc structures, sized generously: posix_spawnattr_t is 336 bytes and
# posix_spawn_file_actions_t 80 on x86_64 and aarch64.
_Attr = ctypes.c_char * 1024
_Actions = ctypes.c_char * 512
_SigSet = ctypes.c_char * 256

_libc.posix_spawn.argtypes = [
    ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
]
_libc.posix_spawn_file_actions_addopen.argtypes = [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
]
_libc.posix_spawn_file_actions_adddup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libc.posix_spawn_file_actions_addclose.argtypes = [ctypes.c_void_p, ctypes.c_int]


def _check(code: int, what: str) -> None:
    if code != 0:
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _sigset(signals: Iterable[int]) -> _SigSet:
    sigset = _SigSet()
    if _libc.sigemptyset(sigset) != 0:
        raise OSError(ctypes.get_errno(), "sigemptyset")
    for number in signals:
        if _libc.sigaddset(sigset, int(number)) != 0:
            raise OSError(ctypes.get_errno(), f"sigaddset {number}")
    return sigset


def _env_entry(name: str, value: str) -> bytes:
    """``name=value`` encoded for execve (as ``os.fsencode`` would, in one call: a
    run's id and instant are new every run, and a cache of entries only churned);
    ``ValueError`` for a name it cannot carry."""
    if not name or "=" in name:
        raise ValueError(f"illegal environment variable name {name!r}")
    entry = f"{name}={value}".encode(_FS_ENCODING, _FS_ERRORS)
    if b"\0" in entry:
        raise ValueError("an argument or the environment holds a NUL byte")
    return entry


@functools.lru_cache(maxsize=4096)
def _program(path: str, argv: tuple[str, ...]) -> tuple[bytes, ctypes.Array]:
    """``path`` and ``argv`` encoded for posix_spawn, kept: a job's argv is the same
    tuple run after run, and the C array is only read."""
    args = [os.fsencode(a) for a in argv]
    if any(b"\0" in arg for arg in args):
        raise ValueError("an argument or the environment holds a NUL byte")
    return os.fsencode(path), (ctypes.c_char_p * (len(args) + 1))(*args, None)


class Spawner:
    """Spawns children that reset ``default_signals`` and run in their own session.

    One instance is shared by every thread: the attributes and the file actions
    are only read by ``posix_spawn`` once built.
    """

    def __init__(self, default_signals: Iterable[int]) -> None:
        self._attr = _Attr()
        _check(_libc.posix_spawnattr_init(self._attr), "posix_spawnattr_init")
        self._empty = _sigset(())
        self._defaults = _sigset(default_signals)
        _check(_libc.posix_spawnattr_setsigmask(self._attr, self._empty), "setsigmask")
        _check(_libc.posix_spawnattr_setsigdefault(self._attr, self._defaults), "setsigdefault")
        flags = ctypes.c_short(_SETSID | _SETSIGMASK | _SETSIGDEF)
        _check(_libc.posix_spawnattr_setflags(self._attr, flags), "setflags")
        self._actions: dict[int, _Actions] = {}  # output descriptor -> its file actions
        self._actions_lock = threading.Lock()
        # (the base mapping, its names, its entries as a C array); replaced, never changed
        self._base: tuple[Mapping[str, str], frozenset[str], ctypes.Array] | None = None

    def _actions_for(self, output: int) -> _Actions:
        """stdin from /dev/null, stdout and stderr into ``output``, ``output`` closed."""
        actions = self._actions.get(output)
        if actions is not None:
            return actions
        with self._actions_lock:
            actions = self._actions.get(output)
            if actions is None:
                actions = _Actions()
                _check(_libc.posix_spawn_file_actions_init(actions),
                       "posix_spawn_file_actions_init")
                try:
                    _check(_libc.posix_spawn_file_actions_addopen(
                        actions, 0, b"/dev/null", os.O_RDONLY, 0), "addopen")
                    _check(_libc.posix_spawn_file_actions_adddup2(actions, output, 1), "adddup2")
                    _check(_libc.posix_spawn_file_actions_adddup2(actions, output, 2), "adddup2")
                    _check(_libc.posix_spawn_file_actions_addclose(actions, output), "addclose")
                except OSError:
                    _libc.posix_spawn_file_actions_destroy(actions)
                    raise
                self._actions[output] = actions
        return actions

    def spawn(self, path: str, argv: Sequence[str], env: Mapping[str, str], output: int,
              before: Callable[[], object] | None = None) -> int:
        """Start ``path`` with ``argv`` and exactly ``env``; stdout and stderr to ``output``.

        ``before`` runs once everything is prepared, right before the process is
        started: the supervisor waits there for a run's instant.

        Returns the pid; raises ``OSError`` (FileNotFoundError, PermissionError, ...)
        with the errno of the failed exec or set-up, and ``ValueError`` for a NUL
        byte in an argument or the environment.
        """
        c_path, c_argv = _program(path, argv if type(argv) is tuple else tuple(argv))
        c_envp, _alive = self._environ(env)  # ``_alive`` holds the base's entries
        actions = self._actions_for(output)
        pid = ctypes.c_int()
        if before is not None:
            before()
        code = _libc.posix_spawn(ctypes.byref(pid), c_path, actions, self._attr, c_argv, c_envp)
        if code != 0:
            raise OSError(code, os.strerror(code), path)
        return pid.value

    def _environ(self, env: Mapping[str, str]) -> tuple[ctypes.Array, object]:
        """``env`` as execve's NULL-terminated array, and what keeps its entries alive.

        The base's part is one copy from a C array built once: filling a new array
        entry by entry took 27 us a spawn (35 base entries and the run's 4), this 10.
        """
        if isinstance(env, ChainMap) and len(env.maps) == 2:
            own, base_env = env.maps
            base = self._base
            if base is None or base[0] is not base_env:
                entries = [_env_entry(name, value) for name, value in base_env.items()]
                base = self._base = (base_env, frozenset(base_env),
                                     (ctypes.c_char_p * len(entries))(*entries))
            if base[1].isdisjoint(own):  # else a run's entry replaces one of the base
                kept = base[2]
                envp = (ctypes.c_char_p * (len(kept) + len(own) + 1))()  # zeroed: NULL-ended
                ctypes.memmove(envp, kept, ctypes.sizeof(kept))
                for index, (name, value) in enumerate(own.items(), len(kept)):
                    envp[index] = _env_entry(name, value)
                return envp, base
        entries = [_env_entry(name, value) for name, value in env.items()]
        return (ctypes.c_char_p * (len(entries) + 1))(*entries, None), None
