"""The pure part: Message → (subject, text, html)."""

from __future__ import annotations

import pytest

from alertd.channels.mail_body import MAX_SUBJECT_CHARS, delivery_key, mail_body, one_line, split_sender
from alertd.render import TRUNCATION_MARKER

from .conftest import make_message


def test_nothing_from_the_payload_is_markup():
    body = mail_body(make_message())
    for hostile in ("<script>", "<img", "<b>host</b>", 'href="javascript'):
        assert hostile not in body.html
    assert "&lt;b&gt;host&lt;/b&gt;" in body.html and "&amp; &quot;friends&quot;" in body.html


def test_the_subject_is_one_line_and_bounded():
    body = mail_body(make_message(title="a\r\nb\x00c\u2028d " + "y" * 500))
    assert body.subject.startswith("a b c d y") and len(body.subject) == MAX_SUBJECT_CHARS
    assert body.subject.endswith(TRUNCATION_MARKER)


def test_an_empty_title_falls_back_to_the_event_name():
    assert mail_body(make_message(title=" \r\n ")).subject == "deploy.failed"


def test_the_body_is_the_same_on_every_attempt():
    assert mail_body(make_message(attempt=1)) == mail_body(make_message(attempt=5))
    assert delivery_key(make_message(attempt=1)) == delivery_key(make_message(attempt=5))
    assert delivery_key(make_message(delivery_id=8)) != delivery_key(make_message())


@pytest.mark.parametrize("link", ["javascript:alert(1)", "https://x.example/\r\nBcc: a@b.c", None])
def test_only_an_http_link_becomes_an_href(link):
    body = mail_body(make_message(link=link))
    assert "<a href" not in body.html and "View the event" not in body.text


def test_fields_are_listed_one_per_line():
    text = mail_body(make_message()).text
    assert "<b>host</b>: <img src=x onerror=alert(1)>\nnote: one X-Injected: yes\n" in text


def test_one_line_drops_controls_and_bidi_overrides():
    assert one_line("a\tb\r\n\u202ec\x1b[31m") == "a b c [31m"


@pytest.mark.parametrize(("value", "expected"), [
    ("alerts@example.com", ("", "alerts@example.com")),
    ("Ops Alerts <alerts@example.com>", ("Ops Alerts", "alerts@example.com")),
])
def test_a_sender_may_carry_a_display_name(value, expected):
    assert split_sender(value) == expected
