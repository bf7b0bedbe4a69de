import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.discord import DiscordChannel, DiscordConfig
from alertd.model import Severity
from alertd.render import TRUNCATION_MARKER

from .conftest import CREATED_ISO, EVENT_ID, LINK, make_message

TOKEN_PATH = "/api/webhooks/1234567890/AbCdEf-GhIjKlMnOpQrStUvWxYz_0123456789"
ZWSP = "\u200b"
HOSTILE_ESCAPED = (r"\<!channel\> \<!here\> \<@U123\> " f"@{ZWSP}everyone @{ZWSP}here "
                   r"\<b\>bold\</b\> \*\*bold\*\* \[x\](http://evil) & done")


def discord(http, vendor, **extra) -> DiscordChannel:
    config = DiscordConfig(name="ops-discord", webhook_url=vendor.url + TOKEN_PATH, timeout="2s", **extra)
    return DiscordChannel(config, http)


def embed_chars(embed: dict) -> int:
    fields = embed.get("fields", [])
    return (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
            + sum(len(f["name"]) + len(f["value"]) for f in fields))


async def test_it_executes_the_webhook_with_one_embed_and_no_mentions(http, vendor):
    message = make_message(title="[ERROR] deploy.failed", summary="Deploy of api failed", fields=(("env", "prod"),))
    outcome = await discord(http, vendor, username="alertd").send(message)

    assert outcome.status == 200
    request = vendor.last
    assert (request.method, request.path) == ("POST", TOKEN_PATH)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "username": "alertd",
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": r"\[ERROR\] deploy.failed",  # `[` could open a masked link: escaped, shown as is
            "description": "Deploy of api failed",
            "url": LINK,
            "color": 0xE67E22,
            "timestamp": CREATED_ISO,
            "fields": [{"name": "env", "value": "prod", "inline": True}],
            "footer": {"text": f"alertd · {EVENT_ID}"},
        }],
    }


async def test_producer_text_can_neither_ping_nor_format(http, vendor):
    await discord(http, vendor).send(make_message())

    body = vendor.last.json()
    embed = body["embeds"][0]
    assert body["allowed_mentions"] == {"parse": []}
    assert embed["title"] == r"\[ERROR\] deploy.failed " + HOSTILE_ESCAPED
    assert embed["description"] == HOSTILE_ESCAPED
    assert embed["fields"] == [
        {"name": "who", "value": rf"\<@U123\> @{ZWSP}everyone", "inline": True},
        {"name": r"\*\*key\*\*", "value": r"a & \<b\>", "inline": True},
    ]
    assert "@everyone" not in vendor.last.body.decode() and "<@U123>" not in vendor.last.body.decode()


async def test_list_and_heading_markers_are_escaped_only_where_they_mean_something(http, vendor):
    await discord(http, vendor).send(make_message(summary="# big\n- item\n1. first\n> quote\nrate 1.5 - ok"))
    assert vendor.last.json()["embeds"][0]["description"] == "\\# big\n\\- item\n1\\. first\n\\> quote\nrate 1.5 - ok"


async def test_over_long_content_is_cut_to_discord_embed_limits(http, vendor):
    message = make_message(title="t" * 300, summary="*" * 9000,
                           fields=tuple((f"name{i}" * 40, "v" * 2000) for i in range(30)))
    await discord(http, vendor).send(message)

    embed = vendor.last.json()["embeds"][0]
    assert len(embed["title"]) == 256 and embed["title"].endswith(TRUNCATION_MARKER)
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    assert embed["description"].endswith(TRUNCATION_MARKER) and len(embed["description"]) >= 256
    assert not embed["description"].removesuffix(TRUNCATION_MARKER).endswith("\\")  # no split escape
    assert embed_chars(embed) <= 6000


async def test_a_long_summary_alone_gets_the_full_description(http, vendor):
    await discord(http, vendor).send(make_message(title="t", summary="s" * 9000, fields=()))
    embed = vendor.last.json()["embeds"][0]
    assert len(embed["description"]) == 4096 and "fields" not in embed


async def test_it_waits_the_retry_after_from_the_429_body(http, vendor):
    vendor.answer(429, {"message": "You are being rate limited.", "retry_after": 1.337, "global": False},
                  Retry_After="2")
    with pytest.raises(RetryableError) as caught:
        await discord(http, vendor).send(make_message())
    assert (caught.value.status, caught.value.retry_after) == (429, 1.337)
    assert "You are being rate limited" in str(caught.value)


async def test_5xx_is_retryable(http, vendor):
    vendor.answer(502, "bad gateway")
    with pytest.raises(RetryableError):
        await discord(http, vendor).send(make_message())


@pytest.mark.parametrize(("status", "answer", "text"), [
    (404, {"message": "Unknown Webhook", "code": 10015}, "Unknown Webhook"),
    (400, {"message": "Invalid Form Body", "code": 50035}, "Invalid Form Body"),
    (401, {"message": "401: Unauthorized", "code": 0}, "Unauthorized"),
])
async def test_discord_refusals_are_permanent_with_the_vendor_text(http, vendor, status, answer, text):
    vendor.answer(status, answer)
    with pytest.raises(PermanentError, match=text) as caught:
        await discord(http, vendor).send(make_message())
    assert caught.value.status == status


async def test_the_webhook_token_never_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    await assert_no_secret_leaks(discord(http, vendor), vendor, [vendor.url + TOKEN_PATH, TOKEN_PATH])


@pytest.mark.parametrize("username", ["Discord alerts", "clyde", "", "x" * 81])
def test_usernames_discord_refuses_are_refused_at_config_time(username):
    with pytest.raises(ValueError, match="username"):
        DiscordConfig(name="d", webhook_url="https://discord.com/api/webhooks/1/x", username=username)


async def test_colour_follows_severity_and_the_default_rate_is_sustainable(http, vendor):
    await discord(http, vendor).send(make_message(severity=Severity.CRITICAL))
    assert vendor.last.json()["embeds"][0]["color"] == 0xE74C3C
    assert discord(http, vendor).rate == "30/m"
