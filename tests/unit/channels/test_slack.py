import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.slack import SlackChannel, SlackConfig
from alertd.model import Severity
from alertd.render import TRUNCATION_MARKER

from .conftest import CREATED_ISO, EVENT_ID, LINK, make_message

TOKEN_PATH = "/services/T0001/B0001/AbCdEfGhIjKlMnOpQrStUvWx"
HOSTILE_ESCAPED = ("&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; @everyone @here &lt;b&gt;bold&lt;/b&gt; **bold** "
                   "[x](http://evil) &amp; done")


def slack(http, vendor, **extra) -> SlackChannel:
    return SlackChannel(SlackConfig(name="ops-slack", webhook_url=vendor.url + TOKEN_PATH, timeout="2s", **extra),
                        http)


def plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": False}


async def test_it_posts_block_kit_to_the_webhook_url(http, vendor):
    message = make_message(title="[ERROR] deploy.failed", summary="Deploy of api failed",
                           fields=(("env", "prod"), ("version", "1.2.3")))
    outcome = await slack(http, vendor).send(message)

    assert outcome.status == 200
    request = vendor.last
    assert (request.method, request.path) == ("POST", TOKEN_PATH)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "text": "[ERROR] deploy.failed: Deploy of api failed",
        "blocks": [{"type": "header", "text": plain("[ERROR] deploy.failed")}],
        "attachments": [{"color": "#e01e5a", "blocks": [
            {"type": "section", "text": plain("Deploy of api failed")},
            {"type": "section", "fields": [plain("env: prod"), plain("version: 1.2.3")]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"Event {EVENT_ID} · {CREATED_ISO} · <{LINK}|Open in alertd>"}]},
        ]}],
        "unfurl_links": False,
        "unfurl_media": False,
    }


async def test_producer_text_can_neither_ping_nor_format(http, vendor):
    await slack(http, vendor).send(make_message())

    body = vendor.last.json()
    assert body["blocks"][0]["text"] == plain(f"[ERROR] deploy.failed {HOSTILE_ESCAPED}")  # exactly 150
    section, fields, _ = body["attachments"][0]["blocks"]
    assert section["text"] == plain(HOSTILE_ESCAPED)  # plain_text: `**bold**` and `[x](…)` stay literal
    assert fields["fields"] == [plain("who: &lt;@U123&gt; @everyone"), plain("**key**: a &amp; &lt;b&gt;")]
    assert body["text"].startswith("[ERROR] deploy.failed &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt;")
    raw = vendor.last.body.decode()
    for trigger in ("<!channel>", "<!here>", "<@U123>", "<b>", "<http://evil"):
        assert trigger not in raw


async def test_over_long_text_is_cut_within_block_kit_limits(http, vendor):
    message = make_message(title="T&" * 200, summary="s<" * 5000,
                           fields=tuple((f"k{i}", "v" * 3000) for i in range(12)))
    await slack(http, vendor).send(message)

    body = vendor.last.json()
    header = body["blocks"][0]["text"]["text"]
    section, fields, _ = body["attachments"][0]["blocks"]
    assert len(header) <= 150 and header == "T&amp;" * 22 + "T" + TRUNCATION_MARKER  # no entity is split
    assert len(section["text"]["text"]) <= 3000 and section["text"]["text"].endswith(TRUNCATION_MARKER)
    assert len(fields["fields"]) == 10
    assert all(len(f["text"]) <= 2000 and f["text"].endswith(TRUNCATION_MARKER) for f in fields["fields"])


@pytest.mark.parametrize(("status", "text"), [(400, "invalid_payload"), (403, "invalid_token"),
                                              (404, "no_service"), (404, "channel_not_found"),
                                              (410, "channel_is_archived")])
async def test_slack_refusals_are_permanent_with_the_vendor_text(http, vendor, status, text):
    vendor.answer(status, text)
    with pytest.raises(PermanentError) as caught:
        await slack(http, vendor).send(make_message())
    assert caught.value.status == status
    assert text in str(caught.value)
    assert caught.value.gone == (status == 410)


async def test_it_retries_after_429_and_5xx(http, vendor):
    channel = slack(http, vendor)
    vendor.answer(429, "rate_limited", Retry_After="30")
    with pytest.raises(RetryableError) as caught:
        await channel.send(make_message())
    assert (caught.value.status, caught.value.retry_after) == (429, 30.0)

    vendor.answer(500, "rollup_error")
    with pytest.raises(RetryableError, match="rollup_error"):
        await channel.send(make_message())


async def test_the_webhook_path_never_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    channel = slack(http, vendor)
    await assert_no_secret_leaks(channel, vendor, [vendor.url + TOKEN_PATH, TOKEN_PATH])


async def test_colour_follows_severity_and_the_rate_defaults_to_slack_limit(http, vendor):
    await slack(http, vendor).send(make_message(severity=Severity.WARNING))
    assert vendor.last.json()["attachments"][0]["color"] == "#daa038"
    assert slack(http, vendor).rate == "1/s"
    assert slack(http, vendor, rate="10/m").rate == "10/m"
