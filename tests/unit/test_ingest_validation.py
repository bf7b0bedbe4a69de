import pytest

from alertd import model
from alertd.auth import ApiKey, KeyRing, hash_key, new_key, presented_key
from alertd.ingest import IngestError, depth_exceeds, parse_envelope
from alertd.model import Severity, event_id_bound, new_event_id


def test_a_minimal_envelope_defaults_to_info_and_an_empty_payload():
    envelope = parse_envelope({"event": "pr.run.failed"})
    assert envelope.severity is Severity.INFO and envelope.payload == {} and envelope.idempotency_key is None


def test_urgent_is_accepted_as_critical_in_any_case():
    assert parse_envelope({"event": "a", "severity": "URGENT"}).severity is Severity.CRITICAL


@pytest.mark.parametrize(("raw", "field", "fragment"), [
    ([], "body", "JSON object"),
    ("text", "body", "JSON object"),
    ({}, "event", "required"),
    ({"event": 5}, "event", "string"),
    ({"event": ""}, "event", "required"),
    ({"event": "Pr.Run"}, "event", "lowercase"),
    ({"event": "a..b"}, "event", "lowercase"),
    ({"event": "a.*"}, "event", "no '*'"),
    ({"event": "a" * 201}, "event", "200"),
    ({"event": "a", "payload": []}, "payload", "JSON object"),
    ({"event": "a", "payload": "x"}, "payload", "JSON object"),
    ({"event": "a", "severity": "loud"}, "severity", "unknown severity"),
    ({"event": "a", "severity": 3}, "severity", "string"),
    ({"event": "a", "idempotency_key": ""}, "idempotency_key", "1 to 200"),
    ({"event": "a", "idempotency_key": "k" * 201}, "idempotency_key", "1 to 200"),
    ({"event": "a", "idempotency_key": 7}, "idempotency_key", "1 to 200"),
    ({"event": "a", "extra": 1}, "extra", "unknown field"),
])
def test_bad_envelopes_are_refused_naming_the_field(raw, field, fragment):
    with pytest.raises(IngestError) as caught:
        parse_envelope(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_event"
    assert caught.value.field == field and fragment in caught.value.message


def test_batch_positions_prefix_the_field():
    with pytest.raises(IngestError) as caught:
        parse_envelope({"event": "BAD"}, "[3].")
    assert caught.value.field == "[3].event"


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_nesting_is_limited_to_32_levels_without_recursion():
    parse_envelope({"event": "a", "payload": nested(31)})
    with pytest.raises(IngestError, match="deeper than 32"):
        parse_envelope({"event": "a", "payload": nested(32)})
    assert depth_exceeds(nested(100_000), 31)
    assert depth_exceeds({"a": [[[[[{"b": 1}]]]]]}, 4)
    assert not depth_exceeds({"a": [1, 2, {"b": []}]}, 4)


def test_keys_are_looked_up_by_hash_and_scoped_by_event_patterns():
    ring = KeyRing([ApiKey("pr", "producer", ("pr.*",), hash_key("k" * 20)),
                    ApiKey("root", "admin", ("*",), hash_key("r" * 20))])
    pr = ring.lookup("k" * 20)
    assert pr is not None and pr.may_emit("pr.run.failed") and not pr.may_emit("deploy.done")
    assert not pr.is_admin
    root = ring.lookup("r" * 20)
    assert root is not None and root.is_admin and root.may_emit("anything")
    for wrong in ("", "k" * 19, "k" * 21, "x" * 100_000, "K" * 20):
        assert ring.lookup(wrong) is None


def test_keys_are_taken_from_either_header():
    assert presented_key("abc", None) == "abc"
    assert presented_key(None, "Bearer abc") == "abc"
    assert presented_key(None, "bearer  abc ") == "abc"
    assert presented_key(None, "Basic abc") is None
    assert presented_key(None, "Bearer ") is None
    assert presented_key(None, None) is None


def test_new_keys_carry_a_scannable_prefix():
    key = new_key()
    assert key.startswith("alertd_") and len(key) > 40 and key != new_key()


def test_event_ids_sort_by_creation_time():
    ids = [new_event_id(1_700_000_000 + i) for i in range(50)]
    assert ids == sorted(ids) and all(len(i) == 30 and i.startswith("evt_") for i in ids)


def test_event_ids_are_ulids_whose_bounds_fall_in_their_millisecond(monkeypatch):
    # the fast encoder (cached time digits, base32 of the random bytes) must spell the same ULID as
    # the bit-by-bit one that event_id_bound uses, or time filters would miss events
    random = bytes(range(246, 256))
    monkeypatch.setattr(model, "_RANDOM", type("Fixed", (), {"take": lambda self: random})())
    for ms in (0, 1, 1_700_000_000_123, 2**48 - 1):
        made = new_event_id(ms / 1000)
        assert made == model._ulid((ms << 80) | int.from_bytes(random, "big"))
        assert event_id_bound(ms / 1000) <= made < event_id_bound((ms + 1) / 1000)


def test_a_key_that_is_not_printable_ascii_is_no_key():
    assert presented_key("key\udcff", None) is None
    assert presented_key(None, "Bearer k\x00ey") is None
    assert presented_key("ключ", None) is None
