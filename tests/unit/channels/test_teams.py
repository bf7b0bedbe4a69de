import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.teams import TeamsChannel, TeamsConfig
from alertd.model import Severity
from alertd.render import TRUNCATION_MARKER

from .conftest import CREATED_ISO, EVENT_ID, LINK, make_message

WORKFLOW_PATH = "/workflows/4a9c2e/triggers/manual/paths/invoke"
SIG = "SiGnAtUrE-0123456789abcdefABCDEF_xyz"
WORKFLOW_QUERY = f"?api-version=2016-06-01&sv=1.0&sig={SIG}"
HOSTILE_ESCAPED = (r"\<!channel\> \<!here\> \<@U123\> @everyone @here \<b\>bold\</b\> \*\*bold\*\* "
                   r"\[x\](http://evil) & done")
WRAPPED = ("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error {} with "
           "ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..")


def teams(http, vendor) -> TeamsChannel:
    config = TeamsConfig(name="ops-teams", webhook_url=vendor.url + WORKFLOW_PATH + WORKFLOW_QUERY, timeout="2s")
    return TeamsChannel(config, http)


def text_block(text: str, **style) -> dict:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


async def test_it_posts_a_message_with_one_adaptive_card(http, vendor):
    vendor.answer(202)
    message = make_message(title="ERROR deploy.failed", summary="Deploy of api failed", fields=(("env", "prod"),))
    outcome = await teams(http, vendor).send(message)

    assert outcome.status == 202
    request = vendor.last
    assert (request.method, request.path) == ("POST", WORKFLOW_PATH + WORKFLOW_QUERY)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                text_block("ERROR deploy.failed", weight="Bolder", size="Medium", color="attention"),
                text_block("Deploy of api failed"),
                {"type": "FactSet", "facts": [{"title": "env", "value": "prod"}]},
                text_block(f"{EVENT_ID} · {CREATED_ISO}", isSubtle=True, size="Small"),
            ],
            "actions": [{"type": "Action.OpenUrl", "title": "Open in alertd", "url": LINK}],
        },
    }]}


async def test_producer_markdown_is_escaped(http, vendor):
    await teams(http, vendor).send(make_message())

    title, summary, facts, _ = vendor.last.json()["attachments"][0]["content"]["body"]
    assert title["text"] == r"\[ERROR\] deploy.failed " + HOSTILE_ESCAPED
    assert summary["text"] == HOSTILE_ESCAPED
    assert facts["facts"] == [{"title": "who", "value": r"\<@U123\> @everyone"},
                              {"title": r"\*\*key\*\*", "value": r"a & \<b\>"}]


async def test_over_long_text_is_cut_and_the_card_stays_small(http, vendor):
    message = make_message(title="*" * 400, summary="_" * 9000, fields=tuple((f"k{i}", "v" * 900) for i in range(15)))
    await teams(http, vendor).send(message)

    title, summary, facts, _ = vendor.last.json()["attachments"][0]["content"]["body"]
    assert len(title["text"]) <= 256 and title["text"].endswith("\\*" + TRUNCATION_MARKER)
    assert len(summary["text"]) <= 3000 and summary["text"].endswith(TRUNCATION_MARKER)
    assert len(facts["facts"]) == 10 and all(len(f["value"]) <= 500 for f in facts["facts"])
    assert len(vendor.last.body) < 28 * 1024  # Teams refuses messages over ~28 KB


async def test_a_legacy_connector_answering_1_is_success(http, vendor):
    vendor.answer(200, "1")
    assert (await teams(http, vendor).send(make_message())).status == 200


async def test_a_429_wrapped_in_a_200_is_retryable(http, vendor):
    vendor.answer(200, WRAPPED.format(429))
    with pytest.raises(RetryableError, match="HTTP 200 wrapping HTTP 429") as caught:
        await teams(http, vendor).send(make_message())
    assert caught.value.status == 429


@pytest.mark.parametrize("status", [400, 413])
async def test_a_refusal_wrapped_in_a_200_is_permanent(http, vendor, status):
    vendor.answer(200, WRAPPED.format(status))
    with pytest.raises(PermanentError, match=f"wrapping HTTP {status}") as caught:
        await teams(http, vendor).send(make_message())
    assert caught.value.status == status


async def test_real_status_codes_are_classified_as_usual(http, vendor):
    channel = teams(http, vendor)
    vendor.answer(429, "", Retry_After="12")
    with pytest.raises(RetryableError) as caught:
        await channel.send(make_message())
    assert caught.value.retry_after == 12.0
    vendor.answer(400, {"error": {"code": "TriggerInputSchemaMismatch", "message": "The input body does not match"}})
    with pytest.raises(PermanentError, match="TriggerInputSchemaMismatch"):
        await channel.send(make_message())


async def test_the_workflow_signature_never_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    await assert_no_secret_leaks(teams(http, vendor), vendor, [vendor.url + WORKFLOW_PATH + WORKFLOW_QUERY, SIG])
    vendor.answer(200, WRAPPED.format(f"400 for sig={SIG}"))
    with pytest.raises(PermanentError) as caught:
        await teams(http, vendor).send(make_message())
    assert SIG not in str(caught.value)


async def test_colour_follows_severity_and_the_rate_stays_in_teams_short_windows(http, vendor):
    await teams(http, vendor).send(make_message(severity=Severity.WARNING))
    assert vendor.last.json()["attachments"][0]["content"]["body"][0]["color"] == "warning"
    assert teams(http, vendor).rate == "1/s"
