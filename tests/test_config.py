"""The settings table and what it drives: files, drop-ins, flags, errors, sample, man page."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from kalad import config
from kalad.config import SECTIONS, SETTINGS, Config, format_value, load, print_config

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def messages(loaded) -> list[str]:
    return [str(p) for p in loaded.problems]


@pytest.fixture
def main(tmp_path) -> Path:
    return tmp_path / "kalad.conf"


# precedence ---------------------------------------------------------------------------

def test_no_file_at_all_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_FILE", str(tmp_path / "absent.conf"))
    loaded = load({})
    assert loaded.config == Config() and not loaded.problems and loaded.files == ()
    assert set(loaded.origins.values()) == {"default"}


def test_default_file_and_its_dropins_are_read_when_no_config_is_named(tmp_path, monkeypatch):
    main = write(tmp_path / "kalad.conf", "[api]\nthreads = 3\n")
    write(tmp_path / "kalad.conf.d" / "a.conf", "[runs]\nkeep_runs = 7\n")
    monkeypatch.setattr(config, "DEFAULT_FILE", str(main))
    loaded = load({})
    assert (loaded.config.threads, loaded.config.keep_runs) == (3, 7)


def test_default_lt_file_lt_dropin_lt_flag(main):
    write(main, "[api]\nport = 9000\nthreads = 2\ninterface = 10.0.0.1\n[runs]\nkeep_runs = 5\n")
    dropins = main.parent / "kalad.conf.d"
    write(dropins / "20-late.conf", "[api]\nthreads = 4\n")
    write(dropins / "10-early.conf", "[api]\nthreads = 3\ninterface = 10.0.0.2\n")
    loaded = load({"port": "9100", "command": "serve", "config": str(main)}, str(main))
    assert not loaded.problems
    c = loaded.config
    assert c.port == (None, 9100)           # flag beats the file
    assert c.threads == 4                   # the last drop-in by name wins
    assert c.interface == "10.0.0.2"        # a drop-in beats the main file
    assert c.keep_runs == 5                 # the main file beats the default
    assert c.jobdb == "lmdb"                # the default stays
    assert loaded.origins["port"] == "flag -p/--port"
    assert loaded.origins["threads"] == f"{dropins / '20-late.conf'}:2"
    assert loaded.origins["keep_runs"] == f"{main}:6"
    assert loaded.origins["jobdb"] == "default"
    assert loaded.files == (str(main), str(dropins / "10-early.conf"),
                            str(dropins / "20-late.conf"))


def test_dropins_skip_hidden_files_backups_and_directories(main):
    write(main, "")
    dropins = main.parent / "kalad.conf.d"
    write(dropins / "10.conf", "[api]\nthreads = 3\n")
    write(dropins / "10.conf~", "[api]\nthreads = 98\n")
    write(dropins / ".20.conf", "[api]\nthreads = 99\n")
    (dropins / "30.conf").mkdir()
    loaded = load({}, str(main))
    assert loaded.config.threads == 3 and not loaded.problems


def test_dropins_are_read_even_without_the_main_file(tmp_path, monkeypatch):
    missing = tmp_path / "kalad.conf"
    write(tmp_path / "kalad.conf.d" / "a.conf", "[api]\nthreads = 5\n")
    monkeypatch.setattr(config, "DEFAULT_FILE", str(missing))
    assert load({}).config.threads == 5


def test_file_values_use_the_flag_parsers(main):
    write(main, "[api]\nport = [::1]:8080\n[log]\nverbose = On\n[daemon]\nstop_grace = 2.5\n"
                "[store]\njobdb = MEMORY\n")
    c = load({}, str(main)).config
    assert c.port == ("::1", 8080) and c.verbose is True
    assert c.stop_grace == 2.5 and c.jobdb == "memory"


def test_ini_syntax_details(main):
    write(main, "; a comment\n# another\n\n[api]\n  INTERFACE:0.0.0.0  \n[jobs]\n"
                "default_owner = 100%(name)s # not a comment\n[daemon]\n[daemon]\n"
                "pidfile=/tmp/k.pid\n")
    loaded = load({}, str(main))
    assert not loaded.problems
    assert loaded.config.interface == "0.0.0.0"
    assert loaded.config.default_owner == "100%(name)s # not a comment"  # no interpolation
    assert loaded.config.pidfile == "/tmp/k.pid"


def test_an_empty_value_is_an_empty_string_where_that_is_allowed(main):
    write(main, "[jobs]\ndefault_owner =\n[api]\nport =\n")
    loaded = load({}, str(main))
    assert loaded.config.default_owner == ""
    assert messages(loaded) == [f"{main}:4: [api] port: '' is not a port or host:port"]


# errors -------------------------------------------------------------------------------

def test_every_error_is_reported_at_once_with_file_and_line(main):
    write(main, "threads = 2\n"          # 1
                "[api]\n"                # 2
                "prot = 9000\n"          # 3
                "port = x\n"             # 4
                "threads = 2\n"          # 5
                "threads = 3\n"          # 6
                "just words\n"           # 7
                "[stor]\n"               # 8
                "lmdb_path = /x\n"       # 9
                "[store]\n"              # 10
                "threads = 4\n"          # 11
                "lmbd_path = /y\n"       # 12
                "[runs\n"                # 13
                "keep_runs = 0\n"        # 14
                "[runs]\n"               # 15
                "keep_runs = 0\n"        # 16
                "= 4\n")                 # 17
    drop = write(main.parent / "kalad.conf.d" / "x.conf", "[log]\nverbose = maybe\n")
    loaded = load({"keep_runs": "-5"}, str(main))
    assert loaded.status == 78
    assert messages(loaded) == [
        f"{main}:1: 'threads' is outside any [section]",
        f"{main}:3: [api] prot: unknown setting (did you mean 'port'?)",
        f"{main}:4: [api] port: 'x' is not a port or host:port",
        f"{main}:6: [api] threads: duplicate setting (first set at line 5)",
        f"{main}:7: 'just words' is not 'key = value'",
        f"{main}:8: [stor]: unknown section (did you mean 'store'?)",
        f"{main}:11: [store] threads: unknown setting (it belongs in [api])",
        f"{main}:12: [store] lmbd_path: unknown setting (did you mean 'lmdb_path'?)",
        f"{main}:13: '[runs' is not a '[section]' line",
        f"{main}:16: [runs] keep_runs: 0 is below the minimum 1",
        f"{main}:17: '= 4' has no key before '='",
        f"{drop}:2: [log] verbose: 'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)",
        "--keep-runs: [runs] keep_runs: -5 is below the minimum 1",
    ]


@pytest.mark.parametrize("text,hint", [
    ("[api]\nthread = 1\n", "(did you mean 'threads'?)"),
    ("[API]\n", "(did you mean 'api'?)"),
    ("[daemon]\npid_file = /x\n", "(did you mean 'pidfile'?)"),
    ("[api]\nkeep_run = 3\n", "(did you mean 'keep_runs' in [runs]?)"),
    ("[api]\nzzzz = 3\n", "unknown setting"),
])
def test_near_miss_suggestions(main, text, hint):
    write(main, text)
    [problem] = load({}, str(main)).problems
    assert str(problem).endswith(hint)


def test_a_missing_named_config_file_is_an_error(tmp_path):
    loaded = load({}, str(tmp_path / "nope.conf"))
    assert messages(loaded) == [f"{tmp_path / 'nope.conf'}: no such file"]
    assert loaded.status == 78


def test_a_directory_or_unreadable_text_is_an_error(tmp_path):
    assert messages(load({}, str(tmp_path))) == [f"{tmp_path}: is a directory"]
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"[api]\n\xff\n")
    assert messages(load({}, str(binary))) == [f"{binary}: not UTF-8 text (byte 6)"]


def test_dev_null_means_no_settings():
    loaded = load({}, "/dev/null")
    assert loaded.config == Config() and not loaded.problems


def test_bad_flags_alone_are_a_usage_error():
    loaded = load({"port": "x", "jobdb": "bolt"}, "/dev/null")
    assert loaded.status == 2
    assert messages(loaded) == [
        "-p/--port: [api] port: 'x' is not a port or host:port",
        "--jobdb: [store] jobdb: 'bolt' is not one of lmdb, sqlite, postgres, mysql, mariadb, redis, memory",
    ]


def test_from_flags_still_builds_a_config_from_flags_alone():
    c, errors = config.from_flags({"threads": "3", "command": "serve"})
    assert c.threads == 3 and errors == []


# the table and what it generates ------------------------------------------------------

def test_the_table_is_well_formed():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert [f.name for f in dataclasses.fields(Config)] == names
    for s in SETTINGS:
        assert re.fullmatch(r"[a-z][a-z_]*", s.name) and s.section in SECTIONS and s.help
        assert s.parse(format_value(s, s.default)) == s.default, s.name


@pytest.mark.parametrize("name,value", [
    ("port", ("::1", 8080)), ("port", ("example.org", 1)), ("port", (None, 0)),
    ("stop_grace", 0.1), ("stop_grace", 3600.0), ("verbose", True),
    ("jobstat_ttl", 10080), ("default_owner", "ops team"),
])
def test_format_value_is_the_inverse_of_parse(name, value):
    s = next(s for s in SETTINGS if s.name == name)
    assert s.parse(format_value(s, value)) == value


def test_the_sample_config_is_generated_from_the_table():
    committed = (ROOT / "etc" / "kalad.conf").read_text()
    assert committed == config.sample_config(), (
        "etc/kalad.conf is stale: .venv/bin/python -m kalad.config > etc/kalad.conf")


def test_the_sample_config_lists_every_setting_commented_out_at_its_default(tmp_path):
    text = config.sample_config()
    assert load({}, str(write(tmp_path / "s.conf", text))).config == Config()
    for s in SETTINGS:
        assert f"#{s.name} =" in text and s.help[1:] in text, s.name
    uncommented = re.sub(r"^#(?=[a-z_]+ =)", "", text, flags=re.M)
    loaded = load({}, str(write(tmp_path / "u.conf", uncommented)))
    assert not loaded.problems and loaded.config == Config()
    assert all(origin != "default" for origin in loaded.origins.values())


def test_print_config_round_trips(tmp_path, main):
    write(main, "[api]\nport = 127.0.0.2:9001\n[daemon]\nstop_grace = 0.25\n")
    write(main.parent / "kalad.conf.d" / "a.conf", "[jobs]\ndefault_owner = ops 100%\n")
    first = load({"verbose": "yes", "keep_runs": "7"}, str(main))
    assert not first.problems
    text = print_config(first)
    assert f"# from {main}:2\nport = 127.0.0.2:9001\n" in text
    assert "# from flag -v/--verbose\nverbose = yes\n" in text
    assert "# from default\njobdb = lmdb\n" in text
    again = load({}, str(write(tmp_path / "printed" / "kalad.conf", text)))
    assert not again.problems and again.config == first.config
    assert all(origin != "default" for origin in again.origins.values())


def man_entries(page: str) -> dict[tuple[str, str], str]:
    """``(section, key) -> text`` of each ``.TP`` entry under a ``.SS [section]`` heading."""
    entries: dict[tuple[str, str], str] = {}
    section, key = None, None
    for line in page.replace("\\-", "-").splitlines():
        heading = re.fullmatch(r"\.SS \"?\[(\w+)\]\"?", line)
        if heading or line.startswith((".SH", ".TP")):
            section, key = (heading.group(1) if heading else
                            None if line.startswith(".SH") else section), None
            continue
        entry = re.fullmatch(r'\.BI "(\w+) = " \w+', line)
        if entry and section:
            key = entry.group(1)
            entries[section, key] = ""
        elif key:
            entries[section, key] += line + "\n"
    return entries


def test_the_man_page_documents_every_setting_with_its_default_and_flags():
    page = (ROOT / "man" / "kalad.conf.5").read_text()
    entries = man_entries(page)
    assert set(entries) == {(s.section, s.name) for s in SETTINGS}
    for s in SETTINGS:
        text = entries[s.section, s.name]
        default = format_value(s, s.default) or "empty"
        assert re.search(rf"Default:\s*(\.[BIR]+ )?{re.escape(default)}", text), s.name
        for flag in s.flags:
            assert flag in text, (s.name, flag)


@pytest.mark.parametrize("page", ["kalad.conf.5", "kalad.8"])
def test_the_man_pages_lint_clean(page):
    proc = subprocess.run(["groff", "-ww", "-man", "-z", str(ROOT / "man" / page)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_kalad_8_names_config_and_pidfile():
    page = (ROOT / "man" / "kalad.8").read_text().replace("\\-", "-")
    for word in ("--config", "--pidfile", "kalad.conf (5)", "78", "/etc/kalad/kalad.conf.d"):
        assert word in page, word
