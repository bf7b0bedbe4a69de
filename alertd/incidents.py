"""A human in the loop: incidents that escalate until someone acknowledges them, and actions that run
only once someone approves them. Links in messages carry signed single-use tokens; a GET of a link
only previews, a POST acts."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from alertd.clock import Clock
from alertd.config import MAX_LINK_TTL
from alertd.dispatch import Dispatcher, Job
from alertd.ingest import RouteTable
from alertd.links import Claim, Kind, LinkError, new_secret, sign, verify
from alertd.model import Envelope, Severity
from alertd.store import NewEvent, Store, Stored
from alertd.store import incident_ops as ops
from alertd.store.reads import action_request, incident, pending_links

log = structlog.get_logger("alertd.incidents")

Link = tuple[str, str]  # (label, url)
Prepare = Callable[[Sequence[Envelope], str], list[NewEvent]]


@dataclass(slots=True)
class _SignedLink:
    """A link in messages: signed when first sent (expires_at 0 until then), and again when it runs low, but
    never past `not_after` (an approval's: retention keeps its event only that long)."""

    label: str
    kind: Kind
    subject: int
    not_after: float = math.inf
    url: str = ""
    expires_at: float = 0.0


class Incidents:
    def __init__(self, store: Store, dispatcher: Dispatcher, routes: Callable[[], RouteTable], prepare: Prepare,
                 clock: Clock, public_url: str, link_ttl: float) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.routes = routes
        self.prepare = prepare
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.link_ttl = link_ttl
        self.secret = b""
        self._links: defaultdict[str, dict[str, _SignedLink]] = defaultdict(dict)  # event id → link key → link
        self.schedule: Callable[[float, str], None] = lambda due, key: None  # set by the scheduler
        self.committed: Callable[[Sequence[NewEvent], Sequence[Stored]], None] = lambda items, stored: None

    async def start(self) -> list[tuple[float, str]]:
        """Loads the signing key and the links of open work; returns the escalation timers to arm."""
        fresh = new_secret()
        self.secret = await self.store.writer.submit(lambda c: ops.link_secret(c, fresh))
        open_, pending = await pending_links(self.store.read)
        for incident_id, event_id in open_:
            self._add_ack_link(event_id, incident_id)
        for request_id, event_id, label, created_at in pending:
            self._add_approve_link(event_id, request_id, label, created_at)
        rows = await self.store.read._all("SELECT id, next_step_at FROM incidents WHERE state = 'open' "
                                          "AND next_step_at IS NOT NULL")
        return [(row[1], str(row[0])) for row in rows]

    # ---- links ----------------------------------------------------------------------------------

    def links_for(self, event_id: str) -> tuple[Link, ...]:
        """The links a message about `event_id` carries. A link is signed again once less than half its
        life is left: an escalation step hours after the incident opened still sends a link that works."""
        found = self._links.get(event_id)
        if not found:
            return ()
        now = self.clock.now()
        return tuple(link for link in (self._fresh(s, now) for s in found.values()) if link is not None)

    def _fresh(self, link: _SignedLink, now: float) -> Link | None:
        if link.not_after - now < 60:
            return None  # past its life (or too near its end to be of use): the message goes without it
        if link.expires_at - now < self.link_ttl / 2:
            link.expires_at = min(now + self.link_ttl, link.not_after)
            link.url = f"{self.public_url}/{link.kind}/{sign(self.secret, link.kind, link.subject, link.expires_at)}"
        return link.label, link.url

    def _add_ack_link(self, event_id: str, incident_id: int) -> None:
        self._links[event_id][f"ack:{incident_id}"] = _SignedLink("Acknowledge", "ack", incident_id)

    def _add_approve_link(self, event_id: str, request_id: int, label: str, created_at: float) -> None:
        # an approval lives MAX_LINK_TTL from its request: retention keeps its event pending that long, and
        # a link signed again later must not outlive the event it would act on
        self._links[event_id][f"approve:{request_id}"] = _SignedLink(
            f"Approve: {label}", "approve", request_id, not_after=created_at + MAX_LINK_TTL)

    def _drop_link(self, event_id: str, key: str) -> None:
        links = self._links.get(event_id)
        if links is not None:
            links.pop(key, None)
            if not links:
                del self._links[event_id]

    def opened(self, event_id: str, incidents: Sequence[tuple[int, float]],
               requests: Sequence[tuple[int, str]]) -> None:
        """After the commit that opened them: links for messages, timers for escalation."""
        for incident_id, first_step_at in incidents:
            self._add_ack_link(event_id, incident_id)
            self.schedule(first_step_at, str(incident_id))
        for request_id, label in requests:
            self._add_approve_link(event_id, request_id, label, self.clock.now())  # made just now

    # ---- acknowledgement ------------------------------------------------------------------------

    def check_link(self, token: str, kind: str) -> Claim:
        return verify(self.secret, token, kind, self.clock.now())  # type: ignore[arg-type]

    async def ack(self, incident_id: int, actor: str, jti: str | None = None) -> ops.AckResult:
        now = time.time()  # rows carry wall time; the clock only decides when timers fire
        result = await self.store.writer.submit(lambda c: ops.ack(c, incident_id, actor, jti, now))
        if result.outcome == "acked":
            found = await incident(self.store.read, incident_id)
            if found is not None:
                self._drop_link(found["event_id"], f"ack:{incident_id}")
            log.info("incident_acked", incident_id=incident_id, actor=actor)
        return result

    async def ack_link(self, claim: Claim) -> ops.AckResult:
        """Acknowledges through a verified link (see check_link); its token id makes it single-use."""
        result = await self.ack(claim.subject, f"link:{claim.jti}", claim.jti)
        if result.outcome == "used":
            raise LinkError(409, "This link has already been used.")
        return result

    # ---- escalation -----------------------------------------------------------------------------

    async def step(self, key: str) -> None:
        """An escalation timer fired: deliver the event to the next step's channels, arm the one after."""
        found = await incident(self.store.read, int(key))
        if found is None or found["state"] != "open" or found["next_step_at"] is None:
            return
        if found["next_step_at"] > self.clock.now():
            self.schedule(found["next_step_at"], key)  # moved later meanwhile
            return
        route = next((r for r in self.routes().routes if r.name == found["route"]), None)
        steps = route.escalate if route is not None else ()
        step = found["step"]
        if step >= len(steps):
            await self.store.writer.submit(lambda c: c.execute(
                "UPDATE incidents SET next_step_at = NULL WHERE id = ? AND step = ?", (int(key), step)))
            return
        event = await self.store.read.event(found["event_id"])
        if event is None:
            return
        following = found["opened_at"] + steps[step + 1].after_s if step + 1 < len(steps) else None
        now = time.time()
        channels = steps[step].channels
        created = await self.store.writer.submit(
            lambda c: ops.escalate(c, int(key), step, event, channels, following, self.store.ids, now))
        if created:
            self.dispatcher.offer(Job(d, event) for d in created)
            log.info("incident_escalated", incident_id=int(key), step=step + 1, channels=list(channels))
        if created is not None and following is not None:
            self.schedule(following, key)

    # ---- approval -------------------------------------------------------------------------------

    async def approve_link(self, claim: Claim) -> dict[str, Any]:
        """Approves through a verified link (see check_link); its token id makes it single-use."""
        actor = f"link:{claim.jti}"
        request = await action_request(self.store.read, claim.subject)
        if request is None:
            raise LinkError(404, "This action no longer exists.")
        original = await self.store.read.event(request["event_id"])
        approved = None
        if original is not None:
            [approved] = self.prepare([Envelope("alertd.action.approved", {
                "summary": f"{request['label']} approved by {actor}", "action": request["action"],
                "label": request["label"], "incident_id": request["incident_id"],
                "event_id": original.id, "event": original.name, "approved_by": actor,
                "original_payload": original.payload,
            }, Severity.WARNING)], "approval")
        now = time.time()
        result = await self.store.writer.submit(
            lambda c: ops.approve(c, claim.subject, actor, claim.jti, approved, self.store.ids, now))
        if result.outcome == "used":
            raise LinkError(409, "This link has already been used.")
        if result.outcome == "gone":
            raise LinkError(410, "The event this action was asked for is no longer kept; nothing was approved.")
        if result.outcome == "decided":
            raise LinkError(409, f"This action was already {request['state']}.")
        if approved is not None:
            self.committed([approved], result.stored)
        self._drop_link(request["event_id"], f"approve:{claim.subject}")
        log.info("action_approved", action=request["action"], request_id=claim.subject, actor=actor)
        return request
