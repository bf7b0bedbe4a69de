import pytest
from pydantic import ValidationError

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.telegram import TelegramChannel, TelegramConfig
from alertd.config import describe_validation_error
from alertd.render import TRUNCATION_MARKER

from .conftest import LINK, make_message

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
HOSTILE_ESCAPED = ("&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; @everyone @here &lt;b&gt;bold&lt;/b&gt; **bold** "
                   "[x](http://evil) &amp; done")


def telegram(http, vendor, chat_id: int | str = 42, **extra) -> TelegramChannel:
    config = TelegramConfig(name="ops-telegram", bot_token=TOKEN, chat_id=chat_id, api_base=vendor.url,
                            timeout="2s", **extra)
    return TelegramChannel(config, http)


def ok() -> dict:
    return {"ok": True, "result": {"message_id": 1}}


async def test_it_calls_send_message_in_html_mode(http, vendor):
    vendor.answer(200, ok())
    message = make_message(title="[ERROR] deploy.failed", summary="Deploy of api failed", fields=(("env", "prod"),))
    outcome = await telegram(http, vendor, chat_id="@ops_alerts").send(message)

    assert outcome.status == 200
    request = vendor.last
    assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "chat_id": "@ops_alerts",
        "text": f'<b>[ERROR] deploy.failed</b>\nDeploy of api failed\n\n<b>env</b>: prod\n\n'
                f'<a href="{LINK}">Open in alertd</a>',
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


async def test_producer_text_is_html_escaped_and_inert(http, vendor):
    link = 'https://alertd.example/ui/events/x?a=1&b="2"'
    await telegram(http, vendor).send(make_message(link=link))

    assert vendor.last.json()["text"] == (
        f"<b>[ERROR] deploy.failed {HOSTILE_ESCAPED}</b>\n{HOSTILE_ESCAPED}\n\n"
        "<b>who</b>: &lt;@U123&gt; @everyone\n<b>**key**</b>: a &amp; &lt;b&gt;\n\n"
        '<a href="https://alertd.example/ui/events/x?a=1&amp;b=&quot;2&quot;">Open in alertd</a>')


async def test_over_long_text_stays_within_4096_characters_and_well_formed(http, vendor):
    message = make_message(title="t" * 400, summary="a&b " * 3000,
                           fields=tuple((f"k{i}", "<" * 1500) for i in range(10)))
    await telegram(http, vendor).send(message)

    text = vendor.last.json()["text"]
    head, summary, _ = text.split("\n", 2)
    assert len(text) <= 4096
    assert head == "<b>" + "t" * (256 - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER + "</b>"
    assert summary.endswith(TRUNCATION_MARKER) and len(summary) >= 512
    assert not summary.removesuffix(TRUNCATION_MARKER).endswith(("&", "&a", "&am", "&amp"))  # no split entity
    assert text.endswith(f'<a href="{LINK}">Open in alertd</a>')


async def test_it_retries_after_telegrams_flood_control(http, vendor):
    vendor.answer(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                        "parameters": {"retry_after": 7}})
    with pytest.raises(RetryableError) as caught:
        await telegram(http, vendor).send(make_message())
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    assert "Too Many Requests: retry after 7" in str(caught.value)


async def test_5xx_without_json_is_retryable(http, vendor):
    vendor.answer(502, "<html>Bad Gateway</html>")
    with pytest.raises(RetryableError):
        await telegram(http, vendor).send(make_message())


@pytest.mark.parametrize(("status", "description"), [
    (400, "Bad Request: chat not found"),
    (400, "Bad Request: can't parse entities: Unsupported start tag"),
    (401, "Unauthorized"),
    (403, "Forbidden: bot was blocked by the user"),
])
async def test_refusals_are_permanent_and_keep_telegrams_description(http, vendor, status, description):
    vendor.answer(status, {"ok": False, "error_code": status, "description": description})
    with pytest.raises(PermanentError) as caught:
        await telegram(http, vendor).send(make_message())
    assert caught.value.status == status
    assert str(caught.value) == f"HTTP {status}: {description}"


async def test_a_migrated_group_names_the_new_chat_id(http, vendor):
    vendor.answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: group chat was upgraded to a "
                        "supergroup chat", "parameters": {"migrate_to_chat_id": -1001234567890}})
    with pytest.raises(PermanentError, match="-1001234567890"):
        await telegram(http, vendor, chat_id=-4242).send(make_message())


async def test_the_bot_token_never_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    await assert_no_secret_leaks(telegram(http, vendor), vendor, [TOKEN, TOKEN.split(":")[1]])


def test_a_token_that_is_not_a_bot_token_is_refused_without_echoing_it():
    with pytest.raises(ValidationError, match="bot_token") as caught:
        TelegramConfig(name="t", bot_token="123:abc/../../evil?x=", chat_id=1)
    assert "evil" not in describe_validation_error(caught.value)  # how config errors are shown


@pytest.mark.parametrize(("given", "kept"), [(42, 42), ("-1001234567890", -1001234567890),
                                             ("@ops_alerts", "@ops_alerts")])
def test_chat_ids_are_numbers_or_channel_usernames(given, kept):
    assert TelegramConfig(name="t", bot_token=TOKEN, chat_id=given).chat_id == kept


@pytest.mark.parametrize("given", ["ops", "@a", "@ops alerts", "1e5"])
def test_other_chat_ids_are_refused(given):
    with pytest.raises(ValueError, match="chat_id"):
        TelegramConfig(name="t", bot_token=TOKEN, chat_id=given)


@pytest.mark.parametrize(("chat_id", "rate"), [(42, "1/s"), (-1001234567890, "20/m"), ("@ops_alerts", "20/m")])
def test_the_default_rate_follows_telegrams_per_chat_limits(http, chat_id, rate):
    config = TelegramConfig(name="t", bot_token=TOKEN, chat_id=chat_id)
    assert TelegramChannel(config, http).rate == rate
    assert TelegramChannel(config.model_copy(update={"rate": "5/m"}), http).rate == "5/m"
