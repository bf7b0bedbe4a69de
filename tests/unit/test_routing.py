from alertd.conditions import parse_conditions
from alertd.ingest import RouteTable
from alertd.model import Envelope, Severity
from alertd.routing import Route, channels_for, match_routes, pattern_matches, sort_routes, valid_pattern


def route(name: str, match: str, channels: tuple[str, ...], floor: Severity = Severity.INFO,
          priority: int = 100, **kw) -> Route:
    return Route(name=name, match=match, channels=channels, min_severity=floor, priority=priority, **kw)


def test_patterns_match_exact_prefix_and_everything():
    assert pattern_matches("pr.run.failed", "pr.run.failed")
    assert not pattern_matches("pr.run.failed", "pr.run.failed.x")
    assert pattern_matches("pr.*", "pr.run")
    assert pattern_matches("pr.*", "pr.run.failed")
    assert not pattern_matches("pr.*", "pr")
    assert not pattern_matches("pr.*", "prx.run")
    assert pattern_matches("*", "anything.at.all")


def test_valid_patterns_refuse_wildcards_in_the_middle_and_uppercase():
    assert valid_pattern("pr.*") and valid_pattern("*") and valid_pattern("a-b.c_d")
    for bad in ("pr.*.x", "PR.run", "a..b", "*.x", "", "a." , "x" * 201):
        assert not valid_pattern(bad), bad


def test_every_matching_route_fans_out_in_priority_order_and_a_channel_gets_one_delivery():
    routes = sort_routes([
        route("late", "*", ("audit", "slack"), priority=50),
        route("early", "pr.*", ("slack", "pager"), priority=10),
        route("other", "deploy.*", ("deploys",)),
    ])
    matched = match_routes(routes, "pr.run.failed", Severity.ERROR)
    assert [r.name for r in matched] == ["early", "late"]
    assert channels_for(matched) == ["slack", "pager", "audit"]


def test_severity_floor_keeps_lower_events_out():
    routes = [route("errors", "*", ("pager",), floor=Severity.ERROR)]
    assert match_routes(routes, "x", Severity.WARNING) == []
    assert [r.name for r in match_routes(routes, "x", Severity.CRITICAL)] == ["errors"]


def test_an_event_that_matches_nothing_reaches_no_channel():
    assert channels_for(match_routes([route("a", "pr.*", ("x",))], "deploy.done", Severity.INFO)) == []


def test_route_table_applies_conditions_per_event_while_caching_by_name():
    conditions = parse_conditions([{"field": "payload.env", "op": "eq", "value": "prod"}])
    table = RouteTable(sort_routes([route("prod-only", "deploy.*", ("pager",), conditions=conditions),
                                    route("all", "deploy.*", ("log",))]))
    prod = Envelope("deploy.done", {"env": "prod"}, Severity.INFO)
    dev = Envelope("deploy.done", {"env": "dev"}, Severity.INFO)
    assert table.channels(prod) == ("pager", "log")
    assert table.channels(dev) == ("log",)
    assert table.channels(prod) == ("pager", "log")


def test_templates_render_in_a_sandbox_and_fall_back_on_failure():
    import pytest

    from alertd.model import Event
    from alertd.render import compile_template, render, truncate

    event = Event("evt_01J0000000000000000000000A", "pr.run.failed", Severity.ERROR,
                  {"repo": "web", "summary": "red"}, 0.0)
    template = compile_template("{{ event.name }} in {{ event.payload.repo }}", "see {{ link }}")
    message = render(event, 1, 1, "http://h", template)
    assert message.title == "pr.run.failed in web"
    assert message.summary == "see http://h/ui/events/evt_01J0000000000000000000000A"
    hostile = compile_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", None)
    assert render(event, 1, 1, "http://h", hostile).title == "[ERROR] pr.run.failed"
    with pytest.raises(ValueError, match="template title"):
        compile_template("{{ unclosed", None)
    assert truncate("x" * 100, 20).endswith("… [truncated]") and len(truncate("x" * 100, 20)) == 20
    assert truncate("short", 20) == "short"
