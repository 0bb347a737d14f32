"""API tokens: how they are made, written down, read back and checked.

The daemon never stores a token, only its SHA-256. A token file holds one line
per token (usually one)::

    name=ci scopes=read,run sha256=<64 hex digits>

Blank lines and lines starting with ``#`` are comments. Token files are the
``*.token`` files of the tokens directory (``[api] tokens_dir``) and, under
systemd, every credential whose name starts with ``kalad-token`` in
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=kalad-token-ci:/path``).

Scopes: ``read`` (every GET), ``write`` (create, update, delete, enable,
disable), ``run`` (start a job now), ``admin`` (everything, deleting all jobs
included). A presented token is hashed and compared with every known hash with
``hmac.compare_digest``, so the time taken does not depend on how much matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Iterable

SCOPES = ("read", "write", "run", "admin")
TOKEN_PREFIX = "kalad_"
TOKEN_SUFFIX = ".token"
CREDENTIAL_PREFIX = "kalad-token"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")


class TokenError(ValueError):
    """A token file or a token name/scope list is not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    scopes: frozenset[str]
    digest: bytes
    source: str = ""

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r} must be 1-64 letters, digits or _.@- "
                         "and start with a letter or digit")
    return name


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    if not scopes:
        raise TokenError(f"no scopes given; choose from {', '.join(SCOPES)}")
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    return scopes


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, recognisable by its ``kalad_`` prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def format_line(name: str, scopes: Iterable[str], token_digest: bytes) -> str:
    ordered = [s for s in SCOPES if s in set(scopes)]
    return f"name={name} scopes={','.join(ordered)} sha256={token_digest.hex()}"


def parse_line(line: str, source: str) -> Token:
    fields: dict[str, str] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if not sep or key not in ("name", "scopes", "sha256"):
            raise TokenError(f"{source}: expected name=NAME scopes=S1,S2 sha256=HEX, "
                             f"got {word[:40]!r}")
        if key in fields:
            raise TokenError(f"{source}: {key} given twice")
        fields[key] = value
    missing = [k for k in ("name", "scopes", "sha256") if k not in fields]
    if missing:
        raise TokenError(f"{source}: missing {', '.join(missing)}")
    try:
        name = check_name(fields["name"])
        scopes = parse_scopes(fields["scopes"])
    except TokenError as exc:
        raise TokenError(f"{source}: {exc}") from None
    hexdigest = fields["sha256"].lower()
    if not _HEX.fullmatch(hexdigest):
        raise TokenError(f"{source}: sha256 must be 64 hex digits")
    return Token(name, scopes, bytes.fromhex(hexdigest), source)


def read_file(path: str) -> list[Token]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.append(parse_line(line, f"{path}:{number}"))
    return tokens


def token_files(tokens_dir: str, credentials_dir: str | None) -> list[str]:
    """Every file to read, in order: ``tokens_dir/*.token``, then the credentials."""
    found: list[str] = []
    for folder, keep in ((tokens_dir, lambda n: n.endswith(TOKEN_SUFFIX)),
                         (credentials_dir, lambda n: n.startswith(CREDENTIAL_PREFIX))):
        if not folder:
            continue
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TokenError(f"{folder}: cannot list: {exc.strerror or exc}") from None
        for name in names:
            path = os.path.join(folder, name)
            if not name.startswith(".") and keep(name) and os.path.isfile(path):
                found.append(path)
    return found


def load(tokens_dir: str, credentials_dir: str | None) -> "TokenRegistry":
    """Every configured token; ``TokenError`` names each problem found (one per line)."""
    tokens: list[Token] = []
    problems: list[str] = []
    for path in token_files(tokens_dir, credentials_dir):
        try:
            tokens += read_file(path)
        except TokenError as exc:
            problems.append(str(exc))
    names: dict[str, str] = {}
    digests: dict[bytes, str] = {}
    for token in tokens:
        if token.name in names:
            problems.append(f"{token.source}: token name {token.name!r} already used at "
                            f"{names[token.name]}")
        if token.digest in digests:
            problems.append(f"{token.source}: same token as {digests[token.digest]}")
        names.setdefault(token.name, token.source)
        digests.setdefault(token.digest, token.source)
    if problems:
        raise TokenError("\n".join(problems))
    return TokenRegistry(tokens)


class TokenRegistry:
    """The tokens the API accepts; empty means authentication is off."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self._tokens = tuple(tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._tokens]

    def verify(self, presented: str) -> Token | None:
        """The token whose hash matches ``presented``; every hash is compared, always."""
        wanted = digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(wanted, token.digest):
                found = token
        return found
