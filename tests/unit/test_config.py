import hashlib
from pathlib import Path

import pytest

from alertd.config import ConfigError, load_config

BASE = """
[[keys]]
name = "pr"
key = "env:PR_KEY"
events = ["pr.*"]

[[channels]]
name = "kosh"
type = "webhook"
url = "http://127.0.0.1:4070/api/inbound/harvester"
signing = "standard"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
timeout = "10s"

[[routes]]
name = "pr-failures"
match = "pr.*"
min_severity = "warning"
channels = ["kosh"]
priority = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PR_KEY", "pr-key-0123456789abcdef")
    for name in ("ALERTD_SERVER__LISTEN", "ALERTD_ADMIN_KEY", "ALERTD_STORAGE__PATH"):
        monkeypatch.delenv(name, raising=False)


def test_the_documented_shape_loads(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert list(config.channels) == ["kosh"]
    assert config.routes[0].name == "pr-failures"
    assert config.settings.keys[0].key.get_secret_value() == "pr-key-0123456789abcdef"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_SERVER__LISTEN", "127.0.0.1:9999")
    monkeypatch.setenv("ALERTD_ADMIN_KEY", "admin-key-0123456789")
    monkeypatch.setenv("ALERTD_STORAGE__PATH", str(tmp_path / "x.db"))
    config = load_config(write(tmp_path, BASE))
    assert config.server.listen == "127.0.0.1:9999"
    assert config.settings.admin_key.get_secret_value() == "admin-key-0123456789"
    assert config.settings.storage.path == tmp_path / "x.db"


def test_secrets_come_from_files_and_systemd_credentials(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pr").write_text("pr-key-from-credential-dir")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = BASE.replace('"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"', f'"file:{tmp_path}/secret"')
    text = text.replace('"env:PR_KEY"', '"cred:pr"')
    config = load_config(write(tmp_path, text))
    assert config.channels["kosh"].secret.get_secret_value() == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert config.settings.keys[0].key.get_secret_value() == "pr-key-from-credential-dir"


def test_key_sha256_is_accepted_instead_of_a_key(tmp_path):
    digest = hashlib.sha256(b"whatever-key-123456").hexdigest()
    config = load_config(write(tmp_path, BASE.replace('key = "env:PR_KEY"', f'key_sha256 = "{digest}"')))
    assert config.settings.keys[0].key_sha256 == digest


@pytest.mark.parametrize(("change", "expected"), [
    (('key = "env:PR_KEY"', 'key = "env:NOT_SET_ANYWHERE"'), "keys[0].key: environment variable NOT_SET_ANYWHERE"),
    (('key = "env:PR_KEY"', 'key = "file:/nonexistent/secret"'), "keys[0].key: cannot read secret file"),
    (('key = "env:PR_KEY"', 'key = "short"'), "keys[0]: key must be at least 16 characters"),
    (('events = ["pr.*"]', 'events = ["pr.*.x"]'), "keys[0]: events: 'pr.*.x'"),
    (('type = "webhook"', 'type = "pigeon"'), "channels[0] (kosh).type: unknown channel type 'pigeon'"),
    (('timeout = "10s"', 'timeout = "forever"'), "channels[0] (kosh).timeout: invalid duration"),
    (('timeout = "10s"', 'timeout = "10s"\ncolour = "red"'), "channels[0] (kosh).colour: Extra inputs"),
    (('signing = "standard"', 'signing = "rot13"'), "channels[0] (kosh).signing"),
    (('secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"', ''), "needs a secret"),
    (('channels = ["kosh"]', 'channels = ["nope"]'), "routes[0] (pr-failures).channels: no channel named 'nope'"),
    (('match = "pr.*"', 'match = "PR"'), "routes[0].match"),
    (('min_severity = "warning"', 'min_severity = "loud"'), "routes[0].min_severity: unknown severity 'loud'"),
    (('priority = 10', 'priority = "first"'), "routes[0].priority"),
    (('name = "kosh"', 'name = "Kosh Channel"'), "channels[0] (Kosh Channel).name"),
])
def test_a_bad_config_fails_with_one_line_naming_the_key(tmp_path, change, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE.replace(*change)))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_sections_and_bad_toml_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="colour"):
        load_config(write(tmp_path, BASE + "\ncolour = 1\n"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[server\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")


def test_bad_listen_and_networks_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"server\.listen: .*HOST:PORT"):
        load_config(write(tmp_path, '[server]\nlisten = "localhost"\n'))
    with pytest.raises(ConfigError, match=r"net\.allow_private"):
        load_config(write(tmp_path, '[net]\nallow_private = ["not-a-net"]\n'))


def test_secrets_never_show_in_errors(tmp_path):
    text = BASE.replace('timeout = "10s"', 'timeout = "10s"\nheaders = { "Bad Header" = "x" }')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert "MfKQ9r8G" not in str(caught.value)


def test_condition_errors_name_the_route(tmp_path):
    text = BASE + '\nwhen = [{ field = "payload.x", op = "gtt", value = 1 }]\n'
    with pytest.raises(ConfigError, match=r"routes\[0\] \(pr-failures\).*when\[0\]"):
        load_config(write(tmp_path, text))
