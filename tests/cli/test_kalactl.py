"""``kalactl`` as a real process against a real kalad: output, exit statuses, round trips."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kalad.cli import kalactl
from kalad.client import Client
from tests.conftest import wait_until
from tests.e2e.daemon import Daemon, free_port

ROOT = Path(__file__).resolve().parents[2]
FUTURE = "R/2030-01-01T00:00:00Z/PT1H"
SUBCOMMANDS = sorted(kalactl.COMMANDS)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("kalad")).start()
    yield d
    d.stop()


@pytest.fixture
def url(daemon):
    u = f"http://127.0.0.1:{daemon.port}"
    Client(u).delete_all()
    return u


@pytest.fixture
def api(url):
    return Client(url)


def kalactl_proc(*args: str, input: str | None = None, env: dict | None = None,
                 **kw) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KALAD_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "kalad.cli.kalactl", *args], input=input,
                          capture_output=True, text=True, timeout=60, env=environ,
                          cwd=ROOT, **kw)


@pytest.fixture
def ctl(url):
    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return kalactl_proc("--url", url, *args, **kw)

    return run


def ok(proc: subprocess.CompletedProcess) -> str:
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    return proc.stdout


def refused(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kalactl: error: "), proc.stderr
    return lines[0]


def make(api: Client, name: str, **fields) -> str:
    job = {"name": name, "command": "true", "schedule": FUTURE, **fields}
    return api.create(job)


# ------------------------------------------------------------------------ create, list, get


def test_create_from_flags_prints_the_id(ctl, api):
    parent = make(api, "parent")
    job_id = ok(ctl("create", "--name", "child", "--command", "echo hi", "--parent", "parent",
                    "--retries", "2", "--epsilon", "PT1M", "--owner", "ops@example.com",
                    "--disabled")).strip()
    job = api.get(job_id)
    assert job["parent_jobs"] == [parent]
    assert (job["retries"], job["epsilon"], job["owner"], job["disabled"]) == (
        2, "PT1M", "ops@example.com", True)


def test_create_a_remote_job_from_flags(ctl, api):
    job_id = ok(ctl("create", "--name", "ping", "--schedule", FUTURE,
                    "--remote-url", "http://127.0.0.1:9/x", "--method", "post",
                    "--body", "{}", "--header", "X-One: 1", "--header", "X-One: 2",
                    "--json"))
    job = api.get(json.loads(job_id)["id"])
    assert job["type"] == 1
    rp = job["remote_properties"]
    assert (rp["url"], rp["method"], rp["body"], rp["headers"]) == (
        "http://127.0.0.1:9/x", "POST", "{}", {"X-One": ["1", "2"]})


def test_create_from_a_file_and_from_stdin(ctl, api, tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"name": "from-file", "command": "true", "schedule": FUTURE}))
    first = ok(ctl("create", "--file", str(path), "--name", "renamed")).strip()
    second = ok(ctl("create", "--file", "-", input=path.read_text())).strip()
    assert api.get(first)["name"] == "renamed"
    assert api.get(second)["name"] == "from-file"


def test_create_with_a_bad_schedule_is_refused_with_the_servers_message(ctl):
    line = refused(ctl("create", "--name", "x", "--command", "true", "--schedule", "nope"))
    assert line.startswith("kalactl: error: schedule: 'nope'") and line.endswith("(HTTP 400)")


def test_create_without_a_name_is_a_usage_error(ctl):
    assert "--name" in refused(ctl("create", "--command", "true"), 2)


def test_list_is_tab_separated_off_a_terminal(ctl, api):
    a = make(api, "alpha")
    b = make(api, "beta", disabled=True)
    lines = ok(ctl("list")).splitlines()
    assert lines == [
        f"{a}\talpha\t{FUTURE}\t2030-01-01 00:00:00Z\t-\tyes",
        f"{b}\tbeta\t{FUTURE}\t2030-01-01 00:00:00Z\t-\tno",
    ]
    assert set(json.loads(ok(ctl("list", "--json")))) == {a, b}
    assert set(json.loads(ok(ctl("--json", "list")))) == {a, b}


def test_get_by_id_prefix_and_name(ctl, api):
    job_id = make(api, "nightly backup")
    for ref in (job_id, job_id[:8], "nightly backup"):
        assert json.loads(ok(ctl("get", ref, "--json")))["id"] == job_id
    text = ok(ctl("get", "nightly backup"))
    assert f"id:          {job_id}\n" in text and f"schedule:    {FUTURE}\n" in text


def test_an_ambiguous_name_lists_the_candidates(ctl, api):
    a, b = make(api, "twin"), make(api, "twin")
    line = refused(ctl("get", "twin"), 2)
    assert "ambiguous" in line and a in line and b in line


def test_resolve_prefers_exact_id_then_name_then_prefix():
    jobs = {"abc1": {"name": "x"}, "abc2": {"name": "abc1x"}, "def": {"name": "abc"}}
    assert kalactl.resolve(None, "abc1", jobs) == "abc1"
    assert kalactl.resolve(None, "abc", jobs) == "def"  # a name beats an id prefix
    assert kalactl.resolve(None, "de", jobs) == "def"
    assert kalactl.resolve(None, "zzz", jobs) == "zzz"  # left to the server's 404
    with pytest.raises(kalactl.UsageError, match="2 jobs match by id prefix"):
        kalactl.resolve(None, "ab", jobs)


def test_an_unknown_job_is_refused_with_the_servers_message(ctl):
    for command in ("get", "start", "enable", "disable", "runs", "next", "delete", "stats"):
        line = refused(ctl(command, "no-such-job"))
        assert line == "kalactl: error: job 'no-such-job' not found (HTTP 404)", command


# ------------------------------------------------------------------------ actions and runs


def test_start_enable_disable(ctl, api):
    job_id = make(api, "worker", command="echo working")
    assert ok(ctl("disable", "worker")) == f"disabled {job_id}\n"
    assert api.get(job_id)["disabled"] is True
    assert ok(ctl("enable", job_id[:6])) == f"enabled {job_id}\n"
    assert api.get(job_id)["disabled"] is False
    assert ok(ctl("start", "worker")) == f"started {job_id}\n"
    wait_until(lambda: any(r["status"] == "succeeded" for r in api.runs(job_id)))


def test_runs_table_output_and_limit(ctl, api):
    job_id = make(api, "echoer", command="sh -c 'echo out-$KALAD_JOB_NAME; exit 3'")
    api.start(job_id)
    api.start(job_id)
    wait_until(lambda: sum(r["status"] == "failed" for r in api.runs(job_id)) == 2)
    lines = ok(ctl("runs", "echoer")).splitlines()
    assert len(lines) == 2
    started, trigger, status, duration, exit_status, attempts, run_id = lines[0].split("\t")
    assert (trigger, status, exit_status, attempts) == ("manual", "failed", "3", "1")
    assert started.startswith("20") and duration != "-" and run_id
    assert len(ok(ctl("runs", "echoer", "--limit", "1")).splitlines()) == 1
    text = ok(ctl("runs", "echoer", "--output"))
    assert text.count("out-echoer\n") == 2 and "exit 3" in text
    runs = json.loads(ok(ctl("runs", "echoer", "--json")))
    assert [r["exit_status"] for r in runs] == [3, 3]


def test_stats_status_and_job_stats(ctl, api, url):
    job_id = make(api, "counted")
    make(api, "off", disabled=True)
    api.start(job_id)
    wait_until(lambda: api.job_stats(job_id))
    text = ok(ctl("stats"))
    assert "jobs:               2\n" in text and "disabled:           1\n" in text
    assert json.loads(ok(ctl("stats", "--json")))["jobs"] == 2
    assert ok(ctl("stats", "counted")).split("\t")[1] == "yes"
    status = ok(ctl("status"))
    assert status.startswith(f"up: {url}/api/v1\njobs: 2 (1 active, 1 disabled)\n")
    assert "next run: 2030-01-01 00:00:00Z\n" in status
    assert json.loads(ok(ctl("status", "--json")))["up"] is True


def test_next_for_a_job_and_for_a_schedule(ctl, api):
    make(api, "hourly")
    assert ok(ctl("next", "hourly", "-n", "2")) == (
        "2030-01-01T00:00:00Z\n2030-01-01T01:00:00Z\n")
    assert json.loads(ok(ctl("next", "--schedule", "R/2030-01-01T00:00:00Z/P1D", "-n", "2",
                             "--json"))) == ["2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"]
    assert "schedule:" in refused(ctl("next", "--schedule", "nope"))
    assert refused(ctl("next"), 2)


# ------------------------------------------------------------------------ delete


def test_delete_several_by_name_and_prefix(ctl, api):
    a, b, keep = make(api, "a"), make(api, "b"), make(api, "keep")
    assert ok(ctl("delete", "a", b[:8])) == f"deleted {a}\ndeleted {b}\n"
    assert list(api.get_all()) == [keep]


def test_delete_all_refuses_without_yes_when_stdin_is_not_a_terminal(ctl, api):
    make(api, "survivor")
    line = refused(ctl("delete", "--all", stdin=subprocess.DEVNULL), 2)
    assert "--yes" in line
    assert len(api.get_all()) == 1
    ok(ctl("delete", "--all", "--yes"))
    assert api.get_all() == {}


def test_delete_all_asks_on_a_terminal(url, api):
    make(api, "asked")
    for answer, left in (("n\n", 1), ("y\n", 0)):
        master, slave = os.openpty()
        try:
            os.write(master, answer.encode())
            proc = kalactl_proc("--url", url, "delete", "--all", stdin=slave)
        finally:
            os.close(slave)
            os.close(master)
        assert proc.returncode == 0, proc
        assert "Delete all 1 jobs" in proc.stderr
        assert len(api.get_all()) == left


# ------------------------------------------------------------------------ export and import


def test_export_delete_all_import_round_trip(ctl, api, tmp_path):
    root = make(api, "root", command="echo root")
    fallback = make(api, "fallback", command="echo fallback")
    child = api.create({"name": "child", "command": "echo child", "parent_jobs": [root],
                        "on_failure_job": fallback})
    make(api, "remote", schedule="R/2030-06-01T00:00:00Z/P1D", type=1,
         remote_properties={"url": "http://127.0.0.1:9/", "method": "GET"}, disabled=True)
    before = api.get_all()
    export = ok(ctl("export"))
    document = json.loads(export)
    names = [j["name"] for j in document["jobs"]]
    assert names.index("root") < names.index("child")
    assert names.index("fallback") < names.index("child")
    (tmp_path / "jobs.json").write_text(export)

    ok(ctl("delete", "--all", "--yes"))
    assert api.get_all() == {}
    mapping = dict(line.split("\t") for line in ok(ctl("import",
                                                       str(tmp_path / "jobs.json"))).splitlines())
    assert set(mapping) == set(before)

    after = api.get_all()
    assert set(after) == set(mapping.values()) and not set(after) & set(before)
    for old_id, old in before.items():
        new = after[mapping[old_id]]
        for field in ("name", "command", "schedule", "disabled", "type", "owner"):
            assert new[field] == old[field], field
        assert new["remote_properties"] == old["remote_properties"]
        assert [mapping[p] for p in old["parent_jobs"] or []] == (new["parent_jobs"] or [])
        assert new["on_failure_job"] == (mapping[old["on_failure_job"]]
                                         if old["on_failure_job"] else "")
    new_child = mapping[child]
    assert after[mapping[root]]["dependent_jobs"] == [new_child]

    ok(ctl("start", "root"))  # the imported jobs run, and the link fires the child
    runs = wait_until(lambda: [r for r in api.runs(new_child) if r["status"] == "succeeded"])
    assert runs[0]["trigger"] == "parent" and runs[0]["output"] == "child\n"


def test_import_from_stdin_and_a_refusal_names_the_job(ctl, api):
    document = {"jobs": [{"id": "1", "name": "good", "command": "true", "schedule": FUTURE},
                         {"id": "2", "name": "bad", "command": "true", "schedule": "nope"}]}
    proc = ctl("import", "-", "--json", input=json.dumps(document))
    assert proc.returncode == 1
    assert "job 'bad'" in proc.stderr and "schedule:" in proc.stderr
    assert [j["name"] for j in api.get_all().values()] == ["good"]


def test_import_takes_the_output_of_list_json(ctl, api):
    parent = make(api, "p")
    api.create({"name": "c", "command": "true", "parent_jobs": [parent]})
    listing = ok(ctl("list", "--json"))
    ok(ctl("delete", "--all", "--yes"))
    mapping = json.loads(ok(ctl("import", "-", "--json", input=listing)))["ids"]
    jobs = {j["name"]: j for j in api.get_all().values()}
    assert jobs["c"]["parent_jobs"] == [mapping[parent]] == [jobs["p"]["id"]]


def test_import_refuses_a_cycle_and_non_json(ctl, tmp_path):
    cycle = {"jobs": [{"id": "a", "name": "a", "parent_jobs": ["b"]},
                      {"id": "b", "name": "b", "parent_jobs": ["a"]}]}
    assert "cycle" in refused(ctl("import", "-", input=json.dumps(cycle)), 2)
    assert "not JSON" in refused(ctl("import", "-", input="{"), 2)


# ------------------------------------------------------------------------ connecting


def test_an_unreachable_daemon_is_69_and_one_line():
    proc = kalactl_proc("--url", f"http://127.0.0.1:{free_port()}", "list")
    line = refused(proc, 69)
    assert "cannot reach kalad" in line


def test_the_url_comes_from_the_environment_then_the_config_file(url, daemon, api, tmp_path):
    make(api, "found")
    proc = kalactl_proc("list", env={"KALAD_URL": url})
    assert "\tfound\t" in ok(proc)
    conf = tmp_path / "kalad.conf"
    conf.write_text(f"[api]\ninterface = 127.0.0.1\nport = {daemon.port}\n")
    assert "\tfound\t" in ok(kalactl_proc("--config", str(conf), "list"))
    line = refused(kalactl_proc("--config", str(tmp_path / "missing.conf"), "list"), 2)
    assert "missing.conf" in line


def test_daemon_url_defaults():
    args = kalactl.build_parser().parse_args(["--config", os.devnull, "list"])
    assert kalactl.daemon_url(args, {}) == "http://127.0.0.1:8000"
    args = kalactl.build_parser().parse_args(["--url", "http://x:1", "list"])
    assert kalactl.daemon_url(args, {"KALAD_URL": "http://y:2"}) == "http://x:1"


def test_token_precedence(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    parse = kalactl.build_parser().parse_args
    assert kalactl.daemon_token(parse(["--token", "t", "list"]), {"KALAD_TOKEN": "e"}) == "t"
    assert kalactl.daemon_token(parse(["--token-file", str(token_file), "list"]),
                                {"KALAD_TOKEN": "e"}) == "from-file"
    assert kalactl.daemon_token(parse(["list"]), {"KALAD_TOKEN": "e"}) == "e"


# ------------------------------------------------------------------------ usage, output, man


def test_usage_errors_are_2_and_one_line():
    refused(kalactl_proc("frobnicate"), 2)
    refused(kalactl_proc("get"), 2)
    assert kalactl_proc().returncode == 2


def test_run_executes_the_command_locally():
    proc = kalactl_proc("run", "echo hi")
    assert (proc.returncode, proc.stdout) == (0, "Command Succeeded!\nOutput:  hi\n")
    assert kalactl_proc("run", "false").returncode == 1


def test_tables_fit_the_terminal_and_clip_with_an_ellipsis():
    rows = [("3f0c6a1e-0000-4000-8000-000000000001", "a very long job name indeed", "yes")]
    text = kalactl.format_table(("ID", "NAME", "ENABLED"), rows, tty=True, width=40)
    lines = text.splitlines()
    assert lines[0].startswith("ID") and all(len(line) <= 40 for line in lines)
    assert "…" in lines[1] and lines[1].endswith("yes")
    wide = kalactl.format_table(("ID", "NAME", "ENABLED"), rows, tty=True, width=200)
    assert "…" not in wide
    plain = kalactl.format_table(("ID", "NAME", "ENABLED"), rows, tty=False)
    assert plain == "\t".join(rows[0]) + "\n"


def test_the_man_page_covers_every_subcommand_and_exit_status():
    page = (ROOT / "man" / "kalactl.1").read_text()
    entries = re.findall(r'^\.TP\n\.B[IR]? "?([a-z]+)', page, re.M)
    assert sorted(set(entries) & set(SUBCOMMANDS)) == SUBCOMMANDS
    for status in ("0", "1", "2", "69"):
        assert f".B {status}\n" in page, status


def test_the_man_page_lints_clean():
    proc = subprocess.run(["groff", "-ww", "-man", "-z", str(ROOT / "man" / "kalactl.1")],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
