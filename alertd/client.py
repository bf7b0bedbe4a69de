"""The CLI's way into a running daemon: the admin API, with errors turned into one clear line."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from yarl import URL


class ClientError(Exception):
    pass


class AdminClient:
    def __init__(self, url: str, key: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        headers = {"x-api-key": self.key} if self.key else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def url_for(self, path: str) -> URL:
        """The daemon's URL (any path prefix kept) with `path` appended exactly as given. `path` comes escaped
        segment by segment (cli.output.segment): parsed as a plain URL, yarl would resolve dot segments and
        `/v1/admin/keys/..` would be sent as `/v1/admin/`, another resource."""
        try:
            base = URL(self.url)
        except ValueError:
            raise ClientError(f"--url {self.url[:80]!r} is not a URL") from None
        if base.scheme not in ("http", "https") or not base.host:
            raise ClientError(f"--url {self.url[:80]!r}: give an http:// or https:// URL, e.g. http://127.0.0.1:8040")
        return base.with_path(base.raw_path.rstrip("/") + path, encoded=True)

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   body: Any = None, headers: dict[str, str] | None = None) -> Any:
        assert self._session is not None
        url = self.url_for(path)
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        data = orjson.dumps(body) if body is not None else None
        headers = {**(headers or {}), **({"content-type": "application/json"} if data is not None else {})}
        try:
            async with self._session.request(method, url, params=query, data=data,
                                             headers=headers) as response:
                raw = await response.read()
        except aiohttp.ClientConnectorError:
            raise ClientError(f"cannot reach alertd at {self.url} (is it running? set --url or ALERTD_URL)") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(f"request to {self.url} failed: {type(exc).__name__}") from None
        try:
            decoded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            decoded = None
        if response.status >= 400:
            error = (decoded or {}).get("error", {}) if isinstance(decoded, dict) else {}
            message = error.get("message") or response.reason or "request failed"
            raise ClientError(f"HTTP {response.status}: {message}")
        return decoded
