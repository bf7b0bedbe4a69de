from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from alertd.redact import (
    DEFAULT_SENSITIVE_KEYS,
    HARMLESS_CACHE_LIMIT,
    REDACTED,
    compile_sensitive,
    is_sensitive,
    normalise_key,
    redact,
)

DEFAULT = compile_sensitive(DEFAULT_SENSITIVE_KEYS)


@pytest.mark.parametrize("key", [
    "password", "Password", "PASSWORD", "db_password", "dbPassword", "password2", "passwd", "token",
    "refresh_token", "accessToken", "AccessToken", "access-token", "x-csrf-token", "secret", "clientSecret",
    "client_secret", "api_key", "apiKey", "APIKey", "X-Api-Key", "x.api.key", "api key", "apikey", "APIKEY",
    "authorization", "Authorization", "proxy-authorization", "cookie", "Set-Cookie", "session",
    "user.session_id", "sessionId", "csrf", "private_key", "privateKey", "ssh_private_key", "access_key",
    "aws_access_key_id", "AWSAccessKeyId", "__token__",
])
def test_redacted_keys(key: str) -> None:
    assert is_sensitive(key, DEFAULT)
    assert DEFAULT(key)


@pytest.mark.parametrize("key", [
    "tokenizer", "passwordless_enabled", "passwordless", "sessions", "author", "authorized", "key", "api",
    "private", "access", "client", "secretary", "cookies_enabled", "host", "message", "", "--", "keyapi",
    "access_level", "private_ip",
])
def test_not_redacted_keys(key: str) -> None:
    assert not is_sensitive(key, DEFAULT)


@pytest.mark.parametrize(("key", "words"), [
    ("accessToken", ("access", "token")),
    ("APIKey", ("api", "key")),
    ("X-Api-Key", ("x", "api", "key")),
    ("user.session_id", ("user", "session", "id")),
    ("a  b--c__d", ("a", "b", "c", "d")),
    ("password2", ("password", "2")),
    ("HTTPServer2Port", ("http", "server", "2", "port")),
    ("", ()),
])
def test_normalise_key(key: str, words: tuple[str, ...]) -> None:
    assert normalise_key(key) == words


def test_nested_dicts_and_lists() -> None:
    payload = {
        "host": "db1",
        "auth": {"user": "ops", "password": "hunter2", "tokens": ["a"]},
        "items": [{"name": "x", "apiKey": "k1"}, [{"secret": {"deep": 1}}], 3, None],
        "headers": {"Authorization": ["Bearer x", "Bearer y"], "X-Request-Id": "r1"},
        "session": {"id": 1, "user": {"name": "a"}},
    }
    assert redact(payload, DEFAULT) == {
        "host": "db1",
        "auth": {"user": "ops", "password": REDACTED, "tokens": ["a"]},
        "items": [{"name": "x", "apiKey": REDACTED}, [{"secret": REDACTED}], 3, None],
        "headers": {"Authorization": REDACTED, "X-Request-Id": "r1"},
        "session": REDACTED,
    }


def test_input_not_mutated_and_containers_are_copies() -> None:
    payload: dict[str, Any] = {"a": {"token": "t", "b": [1, {"c": 2}]}, "l": [{"password": "p"}]}
    before = copy.deepcopy(payload)
    result = redact(payload, DEFAULT)
    assert payload == before
    assert result["a"] is not payload["a"]
    assert result["a"]["b"] is not payload["a"]["b"]
    assert result["a"]["b"][1] is not payload["a"]["b"][1]
    result["a"]["b"][1]["c"] = 99
    assert payload["a"]["b"][1]["c"] == 2


def test_scalars_and_top_level_list() -> None:
    assert redact("password", DEFAULT) == "password"
    assert redact(None, DEFAULT) is None
    assert redact([{"token": 1}, "token"], DEFAULT) == [{"token": REDACTED}, "token"]


def test_non_string_keys_are_kept() -> None:
    assert redact({1: "x", "token": 2}, DEFAULT) == {1: "x", "token": REDACTED}


def test_custom_key_list() -> None:
    custom = compile_sensitive(["ssn", "credit-card", "pin"])
    payload = {"ssn": "1", "creditCard": "2", "credit_card_number": "3", "card": "4", "password": "5",
               "pinned": "6", "user_pin": "7"}
    assert redact(payload, custom) == {
        "ssn": REDACTED, "creditCard": REDACTED, "credit_card_number": REDACTED, "card": "4", "password": "5",
        "pinned": "6", "user_pin": REDACTED,
    }


def test_empty_key_list_redacts_nothing() -> None:
    nothing = compile_sensitive([])
    assert redact({"password": "x"}, nothing) == {"password": "x"}


@pytest.mark.parametrize("key", ["", "--", " . "])
def test_compile_rejects_keys_without_words(key: str) -> None:
    with pytest.raises(ValueError):
        compile_sensitive(["token", key])


def test_deep_nesting_does_not_hit_recursion_limit() -> None:
    depth = max(1000, sys.getrecursionlimit() * 2)
    payload: dict[str, Any] = {"leaf": {"token": "t", "v": 1}}
    for i in range(depth):
        payload = {"n": payload, "l": [i]} if i % 2 else {"n": [payload]}
    result = redact(payload, DEFAULT)
    node: Any = result
    while "leaf" not in node:
        node = node["n"][0] if isinstance(node["n"], list) else node["n"]
    assert node == {"leaf": {"token": REDACTED, "v": 1}}


def test_shared_and_cyclic_structures() -> None:
    shared = {"token": "t"}
    payload: dict[str, Any] = {"a": shared, "b": shared}
    payload["self"] = payload
    result = redact(payload, DEFAULT)
    assert result["a"] == {"token": REDACTED}
    assert result["a"] is result["b"]
    assert result["self"] is result
    assert shared == {"token": "t"}


def test_the_harmless_key_memory_is_bounded_and_never_hides_a_secret() -> None:
    sensitive = compile_sensitive(DEFAULT_SENSITIVE_KEYS)
    hostile = {f"field_{n}": n for n in range(HARMLESS_CACHE_LIMIT * 2)} | {"x" * 5000: 1}
    assert redact(hostile, sensitive) is hostile
    assert len(sensitive.harmless) == HARMLESS_CACHE_LIMIT and "x" * 5000 not in sensitive.harmless
    # every key of this payload is remembered as harmless except the secret, wherever it sits
    payload = {"field_1": {"field_2": [{"field_3": 1, "apiKey": "k"}]}}
    assert redact(payload, sensitive) == {"field_1": {"field_2": [{"field_3": 1, "apiKey": REDACTED}]}}
    assert "apiKey" not in sensitive.harmless
