"""Who may reach the API: tokens read at start-up, the guards' policy, the loopback rule.

kalad refuses to listen on a non-loopback address when no token is configured:
that would be Kala's unauthenticated remote command execution. Loopback means
127.0.0.0/8, ::1, ``localhost`` (every address it resolves to is loopback) and a
Unix socket. A refusal is a configuration error (exit 78), not a crash.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import timedelta
from typing import Mapping

from kalad import tokens as token_files
from kalad.api.guards import Policy
from kalad.core.limits import Limits

log = logging.getLogger(__name__)

UNIX_PREFIX = "unix:"


class AccessError(Exception):
    """The API cannot be opened as configured; the message is for the user (exit 78)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, a name or ``unix:PATH``) only reaches this machine."""
    host = host.strip().strip("[]")
    if host.startswith(UNIX_PREFIX):
        return True
    if not host:
        return False  # every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


def load_tokens(config, environ: Mapping[str, str]) -> token_files.TokenRegistry:
    try:
        registry = token_files.load(config.tokens_dir, environ.get("CREDENTIALS_DIRECTORY"))
    except token_files.TokenError as exc:
        raise AccessError(f"API tokens: {exc}") from None
    return registry


def build_policy(config, host: str, environ: Mapping[str, str]) -> Policy:
    """The guards' policy; ``AccessError`` for a non-loopback listen without tokens."""
    registry = load_tokens(config, environ)
    if not len(registry) and not is_loopback(host):
        raise AccessError(
            f"refusing to listen on {host or 'every interface'} without API tokens: "
            "anyone who can reach it could run commands here; create one with "
            "'kalad token new NAME --scopes read' (see TOKENS in kalad(8)) or listen on "
            "127.0.0.1")
    if len(registry):
        log.info("API tokens: %d (%s)", len(registry), ", ".join(registry.names))
    hosts = frozenset(h.strip() for h in config.allowed_hosts.split(",") if h.strip())
    return Policy(
        tokens=registry,
        allowed_hosts=hosts,
        listen_host="" if host.startswith(UNIX_PREFIX) else host,
        rate=config.rate_limit,
        burst=config.rate_burst,
        max_body=config.max_body,
    )


def job_limits(config) -> Limits:
    return Limits(
        max_jobs=config.max_jobs,
        min_interval=timedelta(seconds=config.min_interval),
        max_depth=config.max_depth,
        max_name=config.max_name,
        max_command=config.max_command,
    )
