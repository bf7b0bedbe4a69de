import pytest

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
