"""GET /v1/admin/openapi.json: the OpenAPI 3.1 document of this API, from the packaged openapi.json
(admin keys only, like every /v1/admin/ path: the auth middleware decides that)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

import alertd

DOCUMENT = "openapi.json"


def load() -> dict[str, Any]:
    """The document as packaged, with `info.version` set to this build's version."""
    document: dict[str, Any] = orjson.loads(resources.files("alertd.api").joinpath(DOCUMENT).read_bytes())
    document["info"]["version"] = alertd.__version__
    return document


@functools.cache
def _body() -> bytes:
    return orjson.dumps(load())


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")
