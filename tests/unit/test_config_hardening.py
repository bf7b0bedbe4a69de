"""Config values that used to load and then misbehave: each is now refused at load with one short line."""

import hashlib
from pathlib import Path

import pytest

from alertd.channels.base import parse_rate
from alertd.config import ConfigError, load_config, split_listen
from alertd.listening import ListenError, bind_listen

KEY_A = "producer-key-0123456789"
KEY_B = "another-key-0123456789ab"
ADMIN = "admin-key-0123456789abcd"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 300
    return message


def webhook(extra: str = "", url: str = "https://hooks.example.com/x", name: str = "hook") -> str:
    return f'[[channels]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}"\n{extra}\n'


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name in ("ALERTD_SERVER__LISTEN", "ALERTD_ADMIN_KEY", "ALERTD_STORAGE__PATH", "ALERTD_NET__ALLOW_PRIVATE",
                 "ALERTD_REDACT__KEYS", "ALERTD_SERVER", "ALERTD_KEYS"):
        monkeypatch.delenv(name, raising=False)


# 1. keys: one key value, one name


def test_two_keys_with_the_same_value_are_refused_without_printing_it(tmp_path):
    text = (f'[[keys]]\nname = "a"\nkey = "{KEY_A}"\n'
            f'[[keys]]\nname = "b"\nkey = "{KEY_A}"\nrole = "admin"\n')
    message = refused(tmp_path, text)
    assert message == "keys[1]: the same key as keys[0]"


def test_a_key_sha256_equal_to_another_key_is_refused(tmp_path):
    digest = hashlib.sha256(KEY_A.encode()).hexdigest().upper()
    text = (f'[[keys]]\nname = "a"\nkey = "{KEY_A}"\n'
            f'[[keys]]\nname = "b"\nkey_sha256 = "{digest}"\nrole = "admin"\n')
    assert refused(tmp_path, text) == "keys[1]: the same key as keys[0]"


def test_a_key_equal_to_the_admin_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_ADMIN_KEY", ADMIN)
    message = refused(tmp_path, f'[[keys]]\nname = "a"\nkey = "{ADMIN}"\n')
    assert message == "keys[0]: the same key as admin_key"
    assert ADMIN not in message


def test_duplicate_key_names_are_refused(tmp_path):
    text = (f'[[keys]]\nname = "x"\nkey = "{KEY_A}"\n'
            f'[[keys]]\nname = "x"\nkey = "{KEY_B}"\n')
    assert refused(tmp_path, text) == "keys[1]: duplicate key name 'x'"


def test_a_key_named_like_the_admin_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_ADMIN_KEY", ADMIN)
    message = refused(tmp_path, f'[[keys]]\nname = "admin"\nkey = "{KEY_A}"\n')
    assert message.startswith("keys[0]: duplicate key name 'admin'")


def test_distinct_keys_still_load(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_ADMIN_KEY", ADMIN)
    text = (f'[[keys]]\nname = "a"\nkey = "{KEY_A}"\n'
            f'[[keys]]\nname = "b"\nkey = "{KEY_B}"\n')
    assert [k.name for k in load_config(write(tmp_path, text)).settings.keys] == ["a", "b"]


# 2. environment overrides that are not JSON


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("ALERTD_NET__ALLOW_PRIVATE", "10.0.0.0/8",
     'ALERTD_NET__ALLOW_PRIVATE: a list must be written as JSON, e.g. ["10.0.0.0/8"]'),
    ("ALERTD_REDACT__KEYS", "password", "ALERTD_REDACT__KEYS: a list must be written as JSON"),
    ("ALERTD_SERVER", "foo", "ALERTD_SERVER: a table must be written as JSON"),
    ("ALERTD_KEYS", "x", "ALERTD_KEYS: a list must be written as JSON"),
])
def test_an_environment_value_that_is_not_json_names_the_variable(tmp_path, monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    assert refused(tmp_path, "").startswith(expected)


def test_a_secret_in_a_bad_environment_value_is_not_echoed(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_KEYS", f"name=a key={KEY_A}")
    assert KEY_A not in refused(tmp_path, "")


def test_a_json_environment_list_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTD_NET__ALLOW_PRIVATE", '["10.0.0.0/8"]')
    assert load_config(write(tmp_path, "")).settings.net.allow_private == ["10.0.0.0/8"]


# 3. storage paths and listen hosts that only failed at serve


def test_an_empty_storage_path_is_refused(tmp_path):
    assert refused(tmp_path, '[storage]\npath = ""\n').startswith("storage.path: ")


def test_a_storage_path_that_is_a_directory_is_refused(tmp_path):
    assert refused(tmp_path, f'[storage]\npath = "{tmp_path}"\n').startswith("storage.path: ")


@pytest.mark.parametrize("listen", ["a" * 64 + ":18074", "..:18074", "a..b:18074"])
def test_a_listen_host_that_is_not_a_name_is_refused(tmp_path, listen):
    assert refused(tmp_path, f'[server]\nlisten = "{listen}"\n').startswith("server.listen: ")


@pytest.mark.parametrize("listen", ["127.0.0.1:80", "[::1]:80", "localhost:80", ":80", "0.0.0.0:80", "[::]:80"])
def test_good_listen_values_still_split(listen):
    split_listen(listen)


@pytest.mark.parametrize("host", ["a" * 64, ".."])
def test_bind_listen_reports_a_bad_host_name_in_one_line(host):
    with pytest.raises(ListenError) as caught:
        bind_listen(host, 18074)
    assert "\n" not in str(caught.value)


# 4. webhook header names


@pytest.mark.parametrize("header", ["X-Team\\n", "Content-Encoding", "content-md5", "CONTENT-LANGUAGE"])
def test_bad_or_content_header_names_are_refused(tmp_path, header):
    message = refused(tmp_path, webhook(f'headers = {{ "{header}" = "v" }}'))
    assert "headers" in message


def test_ordinary_header_names_still_load(tmp_path):
    config = load_config(write(tmp_path, webhook('headers = { "X-Team" = "ops", "Authorization" = "Bearer t" }')))
    assert set(config.channels["hook"].headers) == {"X-Team", "Authorization"}  # type: ignore[attr-defined]


# 5. webhook urls


@pytest.mark.parametrize("url", ["nonsense", "ftp://x", "http://", "https:///path", "file:///etc/passwd"])
def test_a_webhook_url_that_is_not_http_with_a_host_is_refused(tmp_path, url):
    assert refused(tmp_path, webhook(url=url)).startswith("channels[0] (hook).url: ")


def test_a_private_webhook_url_still_loads(tmp_path):
    # the private-address policy is applied when sending, against [net] allow_private
    load_config(write(tmp_path, webhook(url="http://127.0.0.1:4070/in")))


# 6. rates


@pytest.mark.parametrize("rate", ["5e-324/h", "0.00001/s", "0.5/d", "0.01/h"])
def test_rates_below_one_a_day_are_refused(rate):
    with pytest.raises(ValueError, match="at least 1 per day"):
        parse_rate(rate)


@pytest.mark.parametrize(("rate", "per_second"), [("1/h", 1 / 3600), ("1/d", 1 / 86400), ("10/s", 10.0)])
def test_sensible_rates_still_parse(rate, per_second):
    assert parse_rate(rate) == pytest.approx(per_second)


def test_a_tiny_key_rate_is_refused_at_load(tmp_path):
    message = refused(tmp_path, f'[[keys]]\nname = "a"\nkey = "{KEY_A}"\nrate = "5e-324/h"\n')
    assert message.startswith("keys[0].rate: ")


# 7. one short line


def test_a_channel_name_with_a_newline_gives_one_line(tmp_path):
    message = refused(tmp_path, webhook(name="a\\nb", url="nonsense"))
    assert "a\\nb" in message


def test_an_unknown_key_with_control_characters_is_escaped(tmp_path):
    message = refused(tmp_path, '"\\u001b[31mred\\nline" = 1\n')
    assert "\\x1b" in message and "\\n" in message


def test_a_huge_unknown_key_is_cut(tmp_path):
    message = refused(tmp_path, f'{"k" * 200_000} = 1\n')
    assert len(message) < 200


# 8. names differing only by case


def test_sections_differing_only_by_case_are_refused(tmp_path):
    message = refused(tmp_path, '[server]\nlisten = "127.0.0.1:1"\n[SERVER]\nlisten = "127.0.0.1:2"\n')
    assert "SERVER" in message and "server" in message


def test_keys_in_a_section_differing_only_by_case_are_refused(tmp_path):
    message = refused(tmp_path, '[server]\nlisten = "127.0.0.1:1"\nLISTEN = "127.0.0.1:2"\n')
    assert message.startswith("server.")


def test_an_upper_case_section_alone_still_loads(tmp_path):
    assert load_config(write(tmp_path, '[SERVER]\nlisten = "127.0.0.1:2"\n')).server.listen == "127.0.0.1:2"


def test_environment_names_stay_case_insensitive(tmp_path, monkeypatch):
    monkeypatch.setenv("alertd_server__listen", "127.0.0.1:9")
    assert load_config(write(tmp_path, "")).server.listen == "127.0.0.1:9"


def test_a_storage_directory_check_config_may_not_read_is_not_a_traceback(tmp_path, monkeypatch):
    # Path.is_dir raises PermissionError (3.11) for a state directory the caller cannot read (0750):
    # check-config said "config OK" before the directory check, and must not turn into a traceback
    def unreadable(self: Path) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_dir", unreadable)
    config = load_config(write(tmp_path, '[storage]\npath = "/var/lib/alertd/alertd.db"\n'))
    assert str(config.settings.storage.path) == "/var/lib/alertd/alertd.db"
