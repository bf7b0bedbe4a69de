"""Auth and the JSON error shape come from a guard added with each route, not from aiohttp middlewares
(api/guard.py says why). Nothing applies it automatically any more, so this pins that every route the app
serves has it, and that the JSON 404/405 catch-all comes last (a route after it would never be reached on
an aiohttp that resolves in order, and would go unguarded on one that does not)."""

from __future__ import annotations

from types import SimpleNamespace

from alertd.api.app import build_app
from alertd.api.guard import GUARDED


def app():
    server = SimpleNamespace(max_body_bytes=262_144, public_url="http://127.0.0.1:8040")
    return build_app(SimpleNamespace(config=SimpleNamespace(server=server)))


def test_every_route_runs_inside_the_guard() -> None:
    routes = list(app().router.routes())
    assert len(routes) > 100
    unguarded = [(r.method, r.resource.canonical if r.resource else "?") for r in routes
                 if not getattr(r.handler, GUARDED, False)]
    assert unguarded == []


def test_no_middleware_no_sub_app_and_the_catch_all_is_last() -> None:
    built = app()
    assert list(built.middlewares) == []
    assert not built._subapps  # a sub-app's routes would be guarded by nothing here
    resources = list(built.router.resources())
    assert resources[-1].canonical == "/{tail}"
    assert [r.method for r in resources[-1]] == ["*"]
    assert sum(r.canonical == "/{tail}" for r in resources) == 1

