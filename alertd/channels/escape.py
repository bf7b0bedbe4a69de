"""Pure helpers for vendor markups. Producer text is data, never markup: each escaper names the markup it
neutralises, and `fit` cuts the raw text (never an escape sequence) so the escaped result stays within a
vendor's limit with a visible marker."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from yarl import URL

from alertd.render import TRUNCATION_MARKER

_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
# Characters that open inline formatting, a link, HTML/autolinks/mentions, a quote, a heading or a spoiler.
_MARKDOWN_INLINE = re.compile(r"([\\`*_~\[\]<>|#])")
# Block markers that only mean something at the start of a line: "- item", "+ item", "1. item", "1) item".
_MARKDOWN_LIST = re.compile(r"^([ \t]*)(?:([-+])|(\d{1,9})([.)]))(?=[ \t]|$)", re.MULTILINE)
_DISCORD_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
ZERO_WIDTH_SPACE = "\u200b"


def slack_text(text: str) -> str:
    """Slack's three control characters, in any text object: this is what stops `<!channel>`, `<@U123>`
    and `<http://x|y>` from pinging or linking."""
    return text.translate(_ENTITIES)


def html_text(text: str) -> str:
    """Telegram HTML parse mode: `<`, `>` and `&` outside tags must be entities (its docs name only these)."""
    return text.translate(_ENTITIES)


def html_attribute(text: str) -> str:
    """A double-quoted HTML attribute value (Telegram supports `&quot;`)."""
    return text.translate(_ATTRIBUTE)


def _escape_list_marker(match: re.Match[str]) -> str:
    indent, bullet, number, delimiter = match.groups()
    return f"{indent}\\{bullet}" if bullet else f"{indent}{number}\\{delimiter}"


def markdown_text(text: str) -> str:
    """CommonMark-style markdown (Teams TextBlocks, Discord): a backslash before every character that could
    start formatting, a link, HTML or a mention; list markers only at a line start."""
    return _MARKDOWN_LIST.sub(_escape_list_marker, _MARKDOWN_INLINE.sub(r"\\\1", text))


def discord_text(text: str) -> str:
    """Discord markdown, plus a zero-width space that breaks `@everyone` / `@here` (belt and braces next to
    `allowed_mentions: {"parse": []}`; `<@id>` is already broken by the escaped `<`)."""
    return _DISCORD_MASS_MENTION.sub(f"@{ZERO_WIDTH_SPACE}\\1", markdown_text(text))


def _verbatim(text: str) -> str:
    return text


def fit(text: str, limit: int, escape: Callable[[str], str] = _verbatim) -> str:
    """`escape(text)` in at most `limit` characters. A cut is made in the raw text, so no escape sequence or
    entity is split, and the truncation marker shows it."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    marker = TRUNCATION_MARKER if limit > len(TRUNCATION_MARKER) else ""
    budget = limit - len(marker)
    low, high = 0, min(len(text), budget)  # the longest raw prefix whose escape fits: escaping only grows text
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(text[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return escape(text[:low]) + marker


def fit_bytes(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8 (a cut never splits a character), marker included."""
    data = text.encode()
    if len(data) <= limit:
        return text
    marker = TRUNCATION_MARKER.encode()
    return data[: max(0, limit - len(marker))].decode("utf-8", "ignore") + TRUNCATION_MARKER


def url_secret_parts(url: str) -> list[str]:
    """For webhook URLs whose path or query is the credential (Slack, Discord, Teams Workflows `sig=`): the
    parts `scrub()` should mask even when they appear without the rest of the URL."""
    try:
        parsed = URL(url)
        whole = {parsed.raw_path, parsed.path, parsed.raw_query_string, parsed.query_string}
        # A token segment or a `sig=` value can show up on its own; short ones ("services") are not secret.
        pieces = {*parsed.raw_parts, *parsed.parts, *parsed.query.values()}
    except (ValueError, TypeError):
        return []
    parts = {part for part in whole if len(part) >= 8} | {piece for piece in pieces if len(piece) >= 16}
    return sorted(parts, key=len, reverse=True)  # longest first: a whole path is masked before its pieces


def url_query_secrets(url: str) -> list[str]:
    """For any URL a channel sends to: what in it may be a credential though the URL as a whole is not
    declared secret — the query (`?token=…`, as the admin API hides it), a userinfo password, and the Basic
    credential the HTTP client makes of the userinfo (a receiver echoing its headers would show it)."""
    try:
        parsed = URL(url)
        parts = {parsed.raw_query_string, parsed.query_string, *parsed.query.values(), parsed.password or "",
                 parsed.raw_password or ""}
        if parsed.password:
            parts.add(base64.b64encode(f"{parsed.user or ''}:{parsed.password}".encode("latin-1", "replace"))
                      .decode())
    except (ValueError, TypeError):
        return []
    return sorted((part for part in parts if len(part) >= 8), key=len, reverse=True)
