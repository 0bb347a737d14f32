"""``kalad token new NAME --scopes read,run``: make an API token, show it once.

The token goes to standard output, alone on its line, so a script can capture it;
how to install it goes to standard error. The daemon only ever gets the line
``name=NAME scopes=... sha256=HEX``: with ``--install`` that line is written to
``TOKENS_DIR/NAME.token``, never over an existing file: mode 0640 and group
``kalad`` when that group exists (the unit runs the daemon as user kalad), else
0600.
"""

from __future__ import annotations

import argparse
import grp
import os
import shlex
import sys

from kalad import tokens
from kalad.config import SETTINGS

DEFAULT_DIR = next(s.default for s in SETTINGS if s.name == "tokens_dir")
DAEMON_GROUP = "kalad"  # systemd/kalad.sysusers


def daemon_group_id() -> int | None:
    try:
        return grp.getgrnam(DAEMON_GROUP).gr_gid
    except KeyError:
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="token_action", metavar="ACTION")
    new = actions.add_parser("new", help="make a new token and print it once")
    new.add_argument("name", metavar="NAME", help="who uses the token, e.g. ci or backup-host")
    new.add_argument("--scopes", required=True, metavar="S1,S2",
                     help=f"what it may do: {', '.join(tokens.SCOPES)}")
    new.add_argument("--tokens-dir", default=DEFAULT_DIR, metavar="DIR",
                     help=f"where the daemon reads token files (default: {DEFAULT_DIR})")
    new.add_argument("--install", action="store_true",
                     help=f"write DIR/NAME.token now (0640, group {DAEMON_GROUP} if it exists, "
                          "else 0600) instead of printing the command")


def run(args: argparse.Namespace) -> int:
    if args.token_action != "new":
        print("kalad: error: usage: kalad token new NAME --scopes read,run", file=sys.stderr)
        return 2
    try:
        name = tokens.check_name(args.name)
        scopes = tokens.parse_scopes(args.scopes)
    except tokens.TokenError as exc:
        print(f"kalad: error: {exc}", file=sys.stderr)
        return 2
    token = tokens.new_token()
    line = tokens.format_line(name, scopes, tokens.digest(token))
    path = os.path.join(args.tokens_dir, name + tokens.TOKEN_SUFFIX)
    if args.install:
        try:
            os.makedirs(args.tokens_dir, 0o755, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                gid = daemon_group_id()
                if gid is not None:
                    try:
                        os.fchown(f.fileno(), -1, gid)
                        os.fchmod(f.fileno(), 0o640)  # the daemon (group kalad) reads it
                    except PermissionError:
                        pass  # not root: the file stays the caller's, 0600
                f.write(line + "\n")
        except OSError as exc:
            print(f"kalad: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    print(token, flush=True)
    if args.install:
        print(f"kalad: wrote {path}; restart kalad to use it. The token above is shown "
              "only now: keep it where its client can read it.", file=sys.stderr)
    else:
        print("kalad: the token above is shown only now: keep it where its client can read it.\n"
              "kalad: to let the daemon accept it, install this line (only its hash) and "
              "restart kalad:\n"
              f"  echo {shlex.quote(line)} | install -m 0640 -g {DAEMON_GROUP} /dev/stdin "
              f"{shlex.quote(path)}", file=sys.stderr)
    return 0
