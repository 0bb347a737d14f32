"""The ``kalad`` command: ``serve`` runs the daemon, ``run`` runs one command as a job would,
``check-config`` and ``print-config`` show what ``serve`` would make of its config.

Errors are one line each, ``kalad: ...``: exit 2 for bad usage (a bad flag value
included), 78 for a bad config file, listing every error with its file and line,
1 when the daemon cannot start (port taken, store unreadable).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import uuid
from typing import Sequence

from kalad import config as settings
from kalad.cli import copy_store, token


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kalad", description="A job scheduler daemon, compatible with Kala.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser("serve", help="run the scheduler (in the foreground unless "
                                              "--daemon)")
    settings.add_flags(serve)
    serve.add_argument("--daemon", action="store_true",
                       help="detach into the background, write the pid file (--pidfile) and "
                            "exit once the daemon is ready; for hosts without systemd")
    check = commands.add_parser(
        "check-config", help="check the config files (and flags); exit 78 listing every error")
    settings.add_flags(check)
    show = commands.add_parser(
        "print-config", help="print the effective config as INI, each value with its source")
    settings.add_flags(show)
    run = commands.add_parser("run", help="run a command once exactly as a job would")
    run.add_argument("job_command", metavar="COMMAND", help="the command line, quoted as one word")
    copy = commands.add_parser(
        "copy-store", help="copy every job, link and run from one store to another")
    copy_store.add_arguments(copy)
    token.add_arguments(commands.add_parser(
        "token", help="API tokens: 'token new NAME --scopes read,run' makes one"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        return _run(args.job_command)
    if args.command == "copy-store":
        return copy_store.run(args)
    if args.command == "token":
        return token.run(args)
    loaded = settings.load(vars(args), args.config)
    if loaded.problems:
        for problem in loaded.problems:
            print(f"kalad: {problem}", file=sys.stderr)
        return loaded.status
    if args.command == "print-config":
        print(settings.print_config(loaded), end="")
        return 0
    refusal = _access_refusal(loaded.config)
    if refusal:  # before detaching, so that `serve --daemon` says it too
        print(f"kalad: error: {refusal}", file=sys.stderr)
        return settings.EX_CONFIG
    if args.command == "check-config":
        print(f"ok: {', '.join(loaded.files) or 'no config file, defaults and flags only'}")
        return 0
    here = os.getcwd()
    config_file = os.path.abspath(args.config) if args.config else None

    def reload() -> settings.Loaded:
        again = settings.load(vars(args), config_file)
        return dataclasses.replace(again, config=_absolute_paths(again.config, here))

    return _serve(_absolute_paths(loaded.config, here), reload, daemonize=args.daemon)


def _access_refusal(config: settings.Config) -> str:
    """Why the API could not be opened as configured (bad token file, exposed without
    tokens); empty if it can."""
    from kalad.runtime import access

    try:
        access.build_policy(config, settings.listen_address(config)[0], os.environ)
    except access.AccessError as exc:
        return str(exc)
    return ""


def _absolute_paths(config: settings.Config, base: str) -> settings.Config:
    """Relative paths taken against the starting directory: --daemon moves to ``/``."""
    return dataclasses.replace(config, lmdb_path=os.path.join(base, config.lmdb_path),
                               pidfile=os.path.join(base, config.pidfile))


def _serve(config: settings.Config, reload, *, daemonize: bool) -> int:
    from kalad.runtime import logs
    from kalad.runtime.daemon import StartupError, serve

    target = logs.choose_target(config.target, daemonize)
    if not daemonize:
        logs.setup(logs.level_of(config), target)
        try:
            return serve(config, reload=reload)
        except StartupError as exc:
            print(f"kalad: error: {exc}", file=sys.stderr)
            return exc.status

    from kalad.runtime import forking

    fallback = logs.describe_fallback(config.target, daemonize, target)
    if fallback:
        print(f"kalad: warning: {fallback}", file=sys.stderr, flush=True)
    try:
        detached = forking.detach(config.pidfile, keep_stderr=target != "syslog")
    except forking.DetachError as exc:
        print(f"kalad: error: cannot detach: {exc}", file=sys.stderr)
        return 1
    # From here on this is the daemon; its launcher exits when told ready or failed.
    import logging

    log = logging.getLogger("kalad.daemon")
    try:
        logs.setup(logs.level_of(config), target)
        if detached.pidfile.stale:
            log.warning("replaced stale pid file %s (pid %s is not running)",
                        detached.pidfile.path, detached.pidfile.stale)
        log.info("detached, pid %d, pid file %s", os.getpid(), detached.pidfile.path)
        # The launcher's exit says kalad is ready: its ready line is written by then.
        return serve(config, reload=reload, on_ready=lambda: (logs.flush(), detached.ready()))
    except StartupError as exc:
        log.error("%s", exc)
        detached.fail(str(exc))
        return 1
    except BaseException as exc:
        log.exception("kalad failed")
        detached.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        detached.close()


def _run(command: str) -> int:
    """Kala's ``kala run``: same word splitting and environment as a local job, no store."""
    from kalad.core.errors import InvalidJob
    from kalad.core.job import command_argv
    from kalad.core.ports import Attempt
    from kalad.runtime.clock import SystemClock
    from kalad.runtime.daemon import job_environment
    from kalad.runtime.supervisor import Supervisor

    try:
        argv = command_argv(command)
    except InvalidJob as exc:
        print(f"kalad: error: {exc}", file=sys.stderr)
        return 1
    supervisor = Supervisor(SystemClock())
    supervisor.start()
    finished = threading.Event()
    outcomes = []

    def done(outcome) -> None:
        outcomes.append(outcome)
        finished.set()

    run_id = uuid.uuid4().hex
    env = job_environment(dict(os.environ))
    env.update(KALAD_JOB_ID="", KALAD_JOB_NAME="kalad run", KALAD_RUN_ID=run_id,
               KALAD_SCHEDULED_AT="")
    supervisor.launch(Attempt(run_id, "", "kalad run", 1, argv, env), done)
    finished.wait()
    supervisor.stop()
    outcome = outcomes[0]
    if outcome.success:
        print("Command Succeeded!")
        print(f"Output:  {outcome.output.strip()}")
        return 0
    print(f"Command Failed with err: {outcome.message}: {outcome.output.strip()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
