"""The UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; `playwright install`
is never needed). Screenshots land in test-artifacts/ui/. Skipped, saying why, without either."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ADMIN
from tests.ui.conftest import (
    CONDITIONAL_ROUTE,
    dead_event,
    ensure_ack_path,
    incident_state,
    open_incident,
    post_event,
    settle,
)

CHROMIUM = os.environ.get("ALERTD_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright package is not installed (pip install playwright)"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"no Chromium at {CHROMIUM}: run scripts/install-browser-deps"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        await launched.close()


async def new_page(browser: Any, viewport: dict[str, int], **options: Any) -> Any:
    context = await browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.errors = []  # CSP violations and script errors show up here
    return page


async def sign_in(page: Any, base: str, path: str = "/ui", capture: str = "") -> None:
    await page.goto(base + path)
    assert "/ui/login" in page.url
    if capture:
        await shot(page, capture)
    await page.get_by_label("Admin API key").fill(ADMIN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + path.split("#")[0])


async def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_a_failed_delivery_is_seen_with_its_error_then_replayed_and_delivered(hub, browser):
    event_id = await dead_event(hub, payload={"repo": "web", "summary": "tests red"})
    page = await new_page(browser, DESKTOP)
    await sign_in(page, hub.base)
    await shot(page, "overview")
    await page.get_by_role("link", name="Events", exact=True).click()
    await page.get_by_label("Has a delivery that is").select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("link", name="pr.run.failed").click()
    await page.wait_for_url(f"{hub.base}/ui/events/{event_id}")
    card = page.locator(".delivery").first
    assert "HTTP 400" in await card.locator(".error-text").first.inner_text()
    assert await card.locator(".state-dead").count() == 1
    await shot(page, "event-failed")

    hub.receiver_status["code"] = 200
    await page.get_by_role("button", name="Replay to current routes").click()
    await page.wait_for_url(f"{hub.base}/ui/events/{event_id}")
    assert "Replayed to hook" in await page.locator(".flash").inner_text()
    await settle(hub, event_id, "delivered")
    await page.reload()
    replayed = page.locator(".delivery", has_text="replay of")
    assert await replayed.locator("h3 .state-delivered").count() == 1
    assert page.errors == []
    await shot(page, "event-replayed")


async def test_an_incident_is_acknowledged_on_a_phone(hub, browser):
    event_id = await post_event(hub, payload={"summary": "checkout down"}, severity="critical")
    incident_id = await open_incident(hub, event_id)
    ensure_ack_path(hub)
    page = await new_page(browser, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    await sign_in(page, hub.base, "/ui/incidents")
    button = page.get_by_role("button", name="Acknowledge")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 300  # a thumb-sized target
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing scrolls sideways
    await shot(page, "incidents-phone")
    await button.tap()
    await page.wait_for_url(f"{hub.base}/ui/incidents")
    assert "acknowledged" in await page.locator(".flash").inner_text()
    assert await incident_state(hub, incident_id) == ("acked", "ui:admin")
    await shot(page, "incidents-phone-acked")
    assert page.errors == []


async def test_a_request_without_the_csrf_token_is_refused(hub, browser):
    event_id = await dead_event(hub)
    page = await new_page(browser, DESKTOP)
    await sign_in(page, hub.base, f"/ui/events/{event_id}")
    # the form as an attacker's page would send it: same cookie, no token
    await page.evaluate("document.querySelector('form[action$=\"/replay\"] input[name=csrf]').remove()")
    await page.get_by_role("button", name="Replay to current routes").click()
    assert "Form refused" in await page.locator("h1").inner_text()
    answer = await page.request.post(f"{hub.base}/ui/events/{event_id}/replay", form={"csrf": "guess"})
    assert answer.status == 403
    status, body = await hub.call("GET", f"/v1/admin/events/{event_id}")
    assert status == 200 and len(body["deliveries"]) == 1
    await shot(page, "csrf-refused")


async def test_the_pages_render_cleanly_on_desktop_and_phone(hub, browser):
    await dead_event(hub, payload={"repo": "web", "summary": "<b>tests</b> red"})
    hub.receiver_status["code"] = 200
    await settle(hub, await post_event(hub, "pr.merged", severity="warning"), "delivered")
    await hub.call("POST", "/v1/admin/checks", {"name": "nightly.backup", "period": "1h"})
    status, _ = await hub.call("POST", "/v1/admin/routes", CONDITIONAL_ROUTE)
    assert status == 201
    await hub.call("POST", "/v1/admin/silences", {"event": "deploy.*", "duration": "2h", "comment": "db migration"})
    for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        page = await new_page(browser, viewport)
        await sign_in(page, hub.base, capture="login" + suffix)
        for path, name in (("/ui/events", "events"), ("/ui/dlq", "dlq"), ("/ui/channels", "channels"),
                           ("/ui/checks", "checks"), ("/ui/silences", "silences")):
            await page.goto(hub.base + path)
            assert await page.locator("h1").count() == 1
            if viewport is PHONE:
                assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
            await shot(page, name + suffix)
        await page.goto(hub.base + "/ui/routes")
        await page.get_by_label("Event name").fill("pr.run.failed")
        await page.get_by_label("Payload (JSON object)").fill('{"repo": "web"}')
        await page.get_by_role("button", name="Explain").click()
        assert "hook" in await page.locator(".verdict-sum").inner_text()
        await shot(page, "routes" + suffix)
        assert page.errors == [], page.errors
