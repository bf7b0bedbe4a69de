import re
import time
from pathlib import Path

import pytest

from alertd.cli import build_parser, main
from alertd.config import load_config
from alertd.receiver import signature_verdict
from alertd.signing import decode_standard_secret, e11_headers, standard_headers

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_example_config_and_the_demo_config_load(monkeypatch):
    monkeypatch.setenv("PR_KEY", "pr-key-0123456789abcdef")
    example = load_config(ROOT / "alertd.toml.example")
    assert "kosh" in example.channels
    demo = load_config(ROOT / "config" / "demo.toml")
    assert demo.settings.storage.path.name == "alertd-demo.db"


def test_every_cli_command_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`alertd ([a-z][a-z-]*)", readme))
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert named <= set(subcommands), named - set(subcommands)


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first_block = (ROOT / "README.md").read_text().split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("argv", [
    ["replay"],
    ["replay", "evt_x", "--event", "pr.*"],
    ["replay", "--event", "pr.*", "--since", "nonsense"],
    ["replay", "--event", "pr.*", "--limit", "0"],
    ["receive", "--listen", "nope"],
    ["receive", "--status", "999"],
])
def test_bad_cli_input_exits_non_zero_with_one_line(argv, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("alertd: ") and err.count("\n") == 1


def test_check_config_reports_a_bad_file_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = "nowhere"\n')
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "server.listen" in capsys.readouterr().err


def test_a_daemon_that_is_not_running_is_one_clear_line(capsys):
    assert main(["events", "list", "--url", "http://127.0.0.1:1", "--key", "x"]) == 1
    assert "cannot reach alertd" in capsys.readouterr().err


def test_the_receiver_checks_both_signature_schemes():
    body, now = b'{"event":"a"}', time.time()
    headers = standard_headers([decode_standard_secret(SECRET)], "msg_1", int(now), body)
    assert signature_verdict(SECRET, headers, body, now) == "valid"
    assert signature_verdict(SECRET, headers, body + b" ", now) == "INVALID"
    assert signature_verdict(SECRET, headers, body, now + 3600) == "STALE timestamp"
    assert signature_verdict(None, headers, body, now) == "unchecked"
    assert signature_verdict(SECRET, {}, body, now) == "MISSING"
    assert signature_verdict("e11-secret", e11_headers("e11-secret", body), body, now) == "valid (e11)"


@pytest.mark.parametrize("noun", ["events", "deliveries", "dlq", "channels", "routes", "keys"])
def test_a_noun_without_a_verb_shows_its_verbs_and_exits_2(noun, capsys):
    assert main([noun]) == 2
    assert "VERB" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["emit", "x.y", "--payload", "{not json"],
    ["emit", "x.y", "--payload", "[1, 2]"],
    ["emit", "x.y", "--payload", "@/nonexistent/file.json"],
    ["routes", "test", "x.y", "--payload", "nope"],
    ["keys", "revoke", "ci"],
    ["dlq", "retry"],
    ["dlq", "retry", "1", "--channel", "x"],
    ["events", "list", "--limit", "0"],
    ["deliveries", "list", "--since", "last tuesday"],
])
def test_bad_management_input_is_one_line_and_non_zero(argv, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("alertd: ") and err.count("\n") == 1


def test_backup_refuses_to_overwrite_and_names_a_missing_database(tmp_path, capsys):
    config = tmp_path / "a.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "missing.db"}"\n')
    (tmp_path / "exists.db").write_text("x")
    assert main(["backup", str(tmp_path / "exists.db"), "--config", str(config)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "out.db"), "--config", str(config)]) == 1
    assert "no such database" in capsys.readouterr().err
