import pytest

from alertd.clock import ManualClock
from alertd.config import MAX_LINK_TTL
from alertd.incidents import Incidents
from alertd.links import LinkError, new_secret, sign, verify

SECRET = b"k" * 32


def test_a_signed_link_verifies_and_names_its_subject():
    claim = verify(SECRET, sign(SECRET, "ack", 42, 2000), "ack", now=1000)
    assert claim.kind == "ack" and claim.subject == 42 and claim.expires_at == 2000 and len(claim.jti) == 16


def test_two_links_for_one_subject_differ():
    assert sign(SECRET, "ack", 1, 2000) != sign(SECRET, "ack", 1, 2000)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: t.replace(".", ""),
    lambda t: t + ".x",
    lambda t: "",
    lambda t: "a" * 600,
    lambda t: sign(b"other-secret-000000000000000000", "ack", 1, 2000),
])
def test_forged_links_are_refused(mutate):
    with pytest.raises(LinkError) as caught:
        verify(SECRET, mutate(sign(SECRET, "ack", 1, 2000)), "ack", now=1000)
    assert caught.value.status == 400


def test_expired_links_are_refused_with_410():
    with pytest.raises(LinkError) as caught:
        verify(SECRET, sign(SECRET, "ack", 1, 2000), "ack", now=2000)
    assert caught.value.status == 410


def test_a_link_for_one_action_does_not_work_for_another():
    with pytest.raises(LinkError, match="not valid here"):
        verify(SECRET, sign(SECRET, "approve", 1, 2000), "ack", now=1000)


def test_secrets_are_random():
    assert new_secret() != new_secret() and len(new_secret()) == 32


HOUR = 3600.0


def _incidents(clock: ManualClock) -> Incidents:
    # links need only the secret, the clock and the public URL: no store or dispatcher is touched
    incidents = Incidents(None, None, lambda: None, lambda envelopes, source: [], clock,  # type: ignore[arg-type]
                          "http://alertd.test", link_ttl=HOUR * 24)
    incidents.secret = SECRET
    return incidents



def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_link_is_signed_again_only_once_less_than_half_its_life_is_left():
    clock = ManualClock(1_000_000.0)
    incidents = _incidents(clock)
    incidents.opened("evt_1", [(7, clock.now() + 600)], [(9, "Restart API")])
    first = dict(incidents.links_for("evt_1"))
    assert set(first) == {"Acknowledge", "Approve: Restart API"}
    assert first["Acknowledge"].startswith("http://alertd.test/ack/")
    assert first["Approve: Restart API"].startswith("http://alertd.test/approve/")
    clock.advance(HOUR * 12)  # exactly half left: the same links
    assert dict(incidents.links_for("evt_1")) == first
    clock.advance(1)  # just under half: both fresh, each valid for a whole link_ttl from now
    second = dict(incidents.links_for("evt_1"))
    assert all(second[label] != first[label] for label in first)
    ack = verify(SECRET, _token(second["Acknowledge"]), "ack", clock.now())
    assert ack.subject == 7 and ack.expires_at == int(clock.now() + HOUR * 24)
    assert verify(SECRET, _token(second["Approve: Restart API"]), "approve", clock.now()).subject == 9
    # the earlier link still works until its own expiry, then says so
    assert verify(SECRET, _token(first["Acknowledge"]), "ack", clock.now()).subject == 7
    with pytest.raises(LinkError) as caught:
        verify(SECRET, _token(first["Acknowledge"]), "ack", clock.now() + HOUR * 12)
    assert caught.value.status == 410


def test_a_link_dropped_after_its_ack_is_not_sent_again():
    clock = ManualClock(1_000_000.0)
    incidents = _incidents(clock)
    incidents.opened("evt_1", [(7, clock.now() + 600)], [])
    assert incidents.links_for("evt_1")
    incidents._drop_link("evt_1", "ack:7")
    assert incidents.links_for("evt_1") == ()


def test_an_approve_link_is_never_signed_past_its_requests_life():
    # retention keeps an event with a pending approval for MAX_LINK_TTL after the request: a link signed again
    # later (a retry, a replay, an escalation) must not outlive the event it would act on
    clock = ManualClock(1_000_000.0)
    incidents = _incidents(clock)
    incidents.opened("evt_1", [(7, clock.now() + 600)], [(9, "Restart API")])
    clock.advance(MAX_LINK_TTL - HOUR)
    links = dict(incidents.links_for("evt_1"))
    approve = verify(SECRET, _token(links["Approve: Restart API"]), "approve", clock.now())
    assert approve.expires_at <= 1_000_000 + MAX_LINK_TTL
    clock.advance(2 * HOUR)
    assert set(dict(incidents.links_for("evt_1"))) == {"Acknowledge"}  # the incident's link lives on
