"""A channel type that declares `renders = False` gets a Message with nothing rendered (the dispatcher skips
the work): it must then send exactly what it sends for a fully rendered one."""

from __future__ import annotations

import pytest

from alertd.channels import REGISTRY
from tests.unit.channels.conftest import make_message

NOT_RENDERING = sorted(name for name, cls in REGISTRY.items() if not cls.renders)
VOLATILE = {"webhook-timestamp", "webhook-signature", "date"}  # the second the request went out


def test_the_webhook_is_the_type_that_skips_rendering() -> None:
    assert NOT_RENDERING == ["webhook"]


@pytest.mark.parametrize("signing", ["none", "standard", "e11"])
async def test_a_bare_message_sends_what_a_rendered_one_does(vendor, http, signing: str) -> None:
    cls = REGISTRY["webhook"]
    config = cls.config_model.model_validate(
        {"name": "hook", "type": "webhook", "url": vendor.url + "/in", "signing": signing,
         "headers": {"Authorization": "Bearer token-value-1234"},
         **({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} if signing != "none" else {})})
    channel = cls(config, http)
    payload = {"summary": "disk <b>full</b>", "host": "db-1", "nested": {"a": [1, 2]}}
    rendered = make_message(payload=payload)
    bare = make_message(title="", summary="", fields=(), link=None, payload=payload)
    await channel.send(rendered)
    await channel.send(bare)
    first, second = vendor.seen
    assert first.body == second.body
    assert {k: v for k, v in first.headers.items() if k not in VOLATILE} == {
        k: v for k, v in second.headers.items() if k not in VOLATILE}
