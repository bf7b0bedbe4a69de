"""Replay: new deliveries for stored events, linked to the originals; history is never rewritten."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alertd.dispatch import Dispatcher, Job
from alertd.errors import RequestError
from alertd.live import Live
from alertd.model import Delivery, Envelope, Origin
from alertd.store import Store


class ReplayError(RequestError):
    pass


@dataclass(frozen=True, slots=True)
class Replayed:
    event_id: str
    deliveries: list[Delivery]


class Replayer:
    def __init__(self, store: Store, dispatcher: Dispatcher, live: Live) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.live = live

    async def replay_event(self, event_id: str, channels: Sequence[str] | None = None) -> Replayed:
        """To the given channels, or to whatever the routes match now."""
        event = await self.store.read.event(event_id)
        if event is None:
            raise ReplayError(404, "not_found", f"no event {event_id[:60]!r}")
        if channels is not None:
            unknown = [c for c in channels if c not in self.live.snapshot.channels]
            if unknown:
                raise ReplayError(400, "unknown_channel", f"no channel named {unknown[0][:60]!r}", "channels")
            targets = list(dict.fromkeys(channels))
        else:
            envelope = Envelope(event.name, event.payload, event.severity)
            targets = list(self.live.snapshot.routes.channels(envelope))
        if not targets:
            return Replayed(event.id, [])
        originals = {d.channel: d.id for d in await self.store.read.deliveries_for_event(event.id)}
        created = await self.store.add_deliveries(event, [(c, originals.get(c)) for c in targets], Origin.REPLAY)
        self.dispatcher.offer(Job(d, event) for d in created)
        return Replayed(event.id, created)

    async def replay_deliveries(self, delivery_ids: Sequence[int]) -> list[Delivery]:
        """Each delivery again, to its own channel, all committed together or none: unknown ids, and
        deliveries to a channel no longer configured, are refused before anything is made."""
        originals = []
        for delivery_id in dict.fromkeys(delivery_ids):
            found = await self.store.read.delivery(delivery_id)
            if found is None:
                raise ReplayError(404, "not_found", f"no delivery {delivery_id}", "ids")
            if found.channel not in self.live.snapshot.channels:
                raise ReplayError(400, "unknown_channel", f"delivery {delivery_id} went to {found.channel[:60]!r}, "
                                  "which is no longer configured", "ids")
            originals.append(found)
        events = await self.store.read.events_by_id(list({d.event_id for d in originals}))
        # one transaction: a 503 (the store could not commit) then means that nothing was made, nor sent
        made = await self.store.add_deliveries_for(
            [(events[o.event_id], [(o.channel, o.id)]) for o in originals], Origin.REPLAY)
        created: list[Delivery] = []
        for original, deliveries in zip(originals, made, strict=True):
            self.dispatcher.offer(Job(d, events[original.event_id]) for d in deliveries)
            created.extend(deliveries)
        return created
