import pytest
from pydantic import ValidationError

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.ntfy import NtfyChannel, NtfyConfig
from alertd.model import Severity
from alertd.render import TRUNCATION_MARKER

from .conftest import HOSTILE, LINK, make_message

TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"
TOPIC = "ops-alerts_Xq81vPz2"


def ntfy(http, vendor, path: str = "", **extra) -> NtfyChannel:
    config = NtfyConfig(name="ops-ntfy", url=vendor.url + path, topic=TOPIC, timeout="2s", **extra)
    return NtfyChannel(config, http)


async def test_it_publishes_json_to_the_root_url_with_a_bearer_token(http, vendor):
    message = make_message(title="[ERROR] deploy.failed", summary="Deploy of api failed",
                           fields=(("env", "prod"), ("version", "1.2.3")))
    outcome = await ntfy(http, vendor, token=TOKEN).send(message)

    assert outcome.status == 200
    request = vendor.last
    assert (request.method, request.path) == ("POST", "/")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {
        "topic": TOPIC,
        "title": "[ERROR] deploy.failed",
        "message": f"Deploy of api failed\nenv: prod\nversion: 1.2.3\n{LINK}",
        "priority": 4,
        "tags": ["x"],
        "markdown": False,
        "click": LINK,
    }


async def test_without_a_token_there_is_no_authorization_and_a_path_prefix_is_kept(http, vendor):
    await ntfy(http, vendor, path="/ntfy/").send(make_message(link=None))
    assert vendor.last.path == "/ntfy/"
    assert "authorization" not in vendor.last.headers
    assert "click" not in vendor.last.json()


async def test_producer_text_is_plain_text_because_markdown_stays_off(http, vendor):
    await ntfy(http, vendor).send(make_message())
    body = vendor.last.json()
    assert body["markdown"] is False  # ntfy renders the message literally: nothing to escape, nothing altered
    assert body["title"] == f"[ERROR] deploy.failed {HOSTILE}"
    assert body["message"].startswith(f"{HOSTILE}\nwho: <@U123> @everyone\n**key**: a & <b>\n")


@pytest.mark.parametrize("summary", ["é" * 5000, "a" * 6000])
async def test_a_long_message_is_cut_below_4096_bytes_without_splitting_a_character(http, vendor, summary):
    # ntfy takes a body of exactly 4,096 bytes for an attachment (its peek's "limit reached" is read == limit):
    # an ASCII message cut to 4,096 was refused with 40014 "attachments not allowed"
    await ntfy(http, vendor).send(make_message(title="t" * 1000, summary=summary))
    body = vendor.last.json()
    assert len(body["message"].encode()) <= 4095 and body["message"].endswith(TRUNCATION_MARKER)
    assert len(body["title"]) == 256 and body["title"].endswith(TRUNCATION_MARKER)


async def test_a_message_that_json_escaping_grows_still_fits_ntfys_body_limit(http, vendor):
    # a control character is 6 bytes in JSON: 10 fields of 200 ESC made a 12 KB body, refused with 41303
    fields = tuple((f"f{i}", "\x1b" * 200) for i in range(10))
    await ntfy(http, vendor).send(make_message(title="\x1b" * 300, fields=fields))
    assert len(vendor.last.body) <= 8191
    assert vendor.last.json()["message"].endswith(TRUNCATION_MARKER)


@pytest.mark.parametrize(("severity", "priority", "tags"), [
    (Severity.INFO, 3, ["information_source"]), (Severity.WARNING, 3, ["warning"]),
    (Severity.ERROR, 4, ["x"]), (Severity.CRITICAL, 5, ["rotating_light"]),
])
async def test_priority_and_tags_follow_severity(http, vendor, severity, priority, tags):
    await ntfy(http, vendor).send(make_message(severity=severity))
    assert (vendor.last.json()["priority"], vendor.last.json()["tags"]) == (priority, tags)


async def test_ntfy_rate_limiting_is_retryable_and_a_refusal_is_permanent(http, vendor):
    channel = ntfy(http, vendor, token=TOKEN)
    vendor.answer(429, {"code": 42901, "http": 429, "error": "limit reached: too many requests"})
    with pytest.raises(RetryableError, match="too many requests"):
        await channel.send(make_message())
    vendor.answer(403, {"code": 40301, "http": 403, "error": "forbidden"})
    with pytest.raises(PermanentError, match="forbidden") as caught:
        await channel.send(make_message())
    assert caught.value.status == 403


async def test_neither_the_token_nor_the_topic_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    await assert_no_secret_leaks(ntfy(http, vendor, token=TOKEN), vendor, [TOKEN, TOPIC])


@pytest.mark.parametrize("topic", ["", "a/b", "with space", "x" * 65, "../admin"])
def test_topics_ntfy_would_not_accept_are_refused(topic):
    with pytest.raises(ValidationError, match="topic"):
        NtfyConfig(name="n", topic=topic)


def test_the_default_rate_is_ntfys_refill_rate(http):
    assert NtfyChannel(NtfyConfig(name="n", topic="t"), http).rate == "12/m"
