import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertd.channels.escape import discord_text, fit, fit_bytes, html_text, markdown_text, slack_text, url_secret_parts
from alertd.render import TRUNCATION_MARKER

ESCAPERS = [slack_text, html_text, markdown_text, discord_text]
PIECES = [*'ab &<>"*_~`[]()|#@-+.1\\\n é', "@everyone", "@here", "&amp;"]
TRICKY = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@pytest.mark.parametrize("escape", ESCAPERS)
@given(text=TRICKY, limit=st.integers(min_value=0, max_value=80))
def test_fit_never_exceeds_the_limit_and_escapes_a_raw_prefix(escape, text, limit):
    result = fit(text, limit, escape)
    assert len(result) <= limit
    if len(escape(text)) <= limit:
        assert result == escape(text)
    elif limit > len(TRUNCATION_MARKER):
        body = result.removesuffix(TRUNCATION_MARKER)
        assert result.endswith(TRUNCATION_MARKER)
        assert any(escape(text[:n]) == body for n in range(len(text) + 1))  # never a split escape


@given(text=st.text(), limit=st.integers(min_value=20, max_value=200))
def test_fit_bytes_never_exceeds_the_byte_limit(text, limit):
    assert len(fit_bytes(text, limit).encode()) <= limit


def test_markdown_escapes_only_what_could_format():
    assert markdown_text("a_b *c* [d](e) <f> `g` ~h~ |i| #j") == r"a\_b \*c\* \[d\](e) \<f\> \`g\` \~h\~ \|i\| \#j"
    assert markdown_text("- x\n  + y\n12. z\n3) w\nv1.2 - ok") == "\\- x\n  \\+ y\n12\\. z\n3\\) w\nv1.2 - ok"
    assert discord_text("@everyone @Here") == "@\u200beveryone @\u200bHere"


def test_the_secret_parts_of_a_webhook_url_are_its_path_and_long_pieces():
    assert url_secret_parts("https://hooks.slack.com/services/T0/B0/AbCdEfGhIjKlMnOpQrSt") == [
        "/services/T0/B0/AbCdEfGhIjKlMnOpQrSt", "AbCdEfGhIjKlMnOpQrSt"]
    assert "sigSIGsigSIGsigSIG" in url_secret_parts("https://x.example/w?api-version=1&sig=sigSIGsigSIGsigSIG")
    assert url_secret_parts("https://x.example/") == []
