"""Claims: one team URL, each event to the laptop it is meant for.

A subscriber may claim events in the filter language (`provider:stripe $.data.object.metadata.dev=ana`),
or be the channel's default. An event that some claim matches goes to its claimants only; an
unclaimed one goes to the default subscriber if there is one, else to every subscriber. Claims
are kept in the relay's storage, so they hold while their laptop is offline (its events wait
for it instead of going elsewhere) and on every relay instance.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from hookinspect.errors import UsageError
from hookinspect.formats.filters import DeliveryFilter, parse_filter
from hookinspect.model import Delivery, Headers
from hookinspect.relay.storage import Claim, RelayEvent, RelayStorage

REFRESH_SECONDS = 1.0  # how stale another instance's view of a channel's claims may be
# A claim whose subscriber has not been connected for this long is ignored: a laptop gone for
# good must not keep its share waiting forever (`channel release` ends a claim at once).
CLAIM_TTL_SECONDS = 7 * 86400
RENEW_SECONDS = 60.0  # a connected subscriber's claim is renewed this often
MAX_CLAIM_LENGTH = 2000
MAX_SUBSCRIBER_LENGTH = 100


def parse_claim(text: str) -> DeliveryFilter:
    """A claim in the filter language; what a relay cannot judge is a UsageError saying why."""
    if len(text) > MAX_CLAIM_LENGTH:
        raise UsageError(f"a claim is at most {MAX_CLAIM_LENGTH} characters")
    claim = parse_filter(text)
    if claim.is_empty:
        raise UsageError("an empty claim would take nothing; give a filter, e.g. provider:stripe")
    if claim.statuses or claim.verdicts:
        raise UsageError("status: and verdict: cannot be claimed: the relay sends nothing on and checks no signature")
    return claim


@dataclass(frozen=True)
class Subscription:
    """Who is asking: its name, and its claim or default role (neither: a plain subscriber)."""

    subscriber: str | None = None
    claim: DeliveryFilter | None = None
    is_default: bool = False


class ClaimRouter:
    """Decides, per event and subscriber, whether the event is that subscriber's to get."""

    def __init__(self, storage: RelayStorage, refresh_seconds: float = REFRESH_SECONDS,
                 ttl_seconds: float = CLAIM_TTL_SECONDS) -> None:
        self.storage = storage
        self.refresh_seconds = refresh_seconds
        self.ttl_seconds = ttl_seconds
        self._claims: dict[str, tuple[float, list[tuple[Claim, DeliveryFilter]]]] = {}
        self._deliveries: OrderedDict[tuple[str, int], Delivery] = OrderedDict()  # shared by a channel's subscribers

    def release(self, channel_id: str, subscriber: str) -> bool:
        """End a subscriber's claim (blocking); its share goes to the others at once."""
        released = self.storage.delete_claim(channel_id, subscriber)
        self._claims.pop(channel_id, None)
        return released

    def register(self, channel_id: str, subscription: Subscription, text: str) -> None:
        """Record a subscriber's claim (blocking: called in a thread)."""
        assert subscription.subscriber is not None
        self.storage.set_claim(channel_id, Claim(subscription.subscriber, text, subscription.is_default, time.time()))
        self._claims.pop(channel_id, None)

    def cached(self, channel_id: str) -> list[tuple[Claim, DeliveryFilter]] | None:
        """The channel's claims if read less than `refresh_seconds` ago (no I/O), else None."""
        cached = self._claims.get(channel_id)
        if cached is not None and time.monotonic() - cached[0] < self.refresh_seconds:
            return cached[1]
        return None

    def claims(self, channel_id: str) -> list[tuple[Claim, DeliveryFilter]]:
        """The channel's claims, read again when older than `refresh_seconds` (blocking)."""
        cached = self.cached(channel_id)
        if cached is not None:
            return cached
        parsed = []
        oldest = time.time() - self.ttl_seconds
        for claim in self.storage.claims(channel_id):
            if claim.seen_at < oldest:
                continue  # its laptop has been away longer than claims last
            try:
                parsed.append((claim, parse_claim(claim.filter) if not claim.is_default else DeliveryFilter()))
            except UsageError:
                continue  # written by a newer relay with terms this one does not know: not judged here
        if len(self._claims) > 1000:
            self._claims.clear()
        self._claims[channel_id] = (time.monotonic(), parsed)
        return parsed

    def select(self, events: list[RelayEvent], subscription: Subscription,
               claims: list[tuple[Claim, DeliveryFilter]]) -> list[RelayEvent]:
        """The events among `events` that are `subscription`'s."""
        if not claims and not subscription.claim and not subscription.is_default:
            return events  # nobody claims anything: every subscriber gets every event
        claiming = [(claim, flt) for claim, flt in claims if not claim.is_default]
        has_default = any(claim.is_default for claim, _ in claims) or subscription.is_default
        chosen = []
        for event in events:
            delivery = self._delivery(event)
            mine = subscription.claim is not None and subscription.claim.matches(delivery)
            claimed = mine or any(flt.matches(delivery) for claim, flt in claiming
                                  if claim.subscriber != subscription.subscriber)
            if mine or (not claimed and (subscription.is_default or not has_default)):
                chosen.append(event)
        return chosen

    def _delivery(self, event: RelayEvent) -> Delivery:
        key = (event.channel, event.id)
        delivery = self._deliveries.get(key)
        if delivery is None:
            from hookinspect.signing.registry import Secrets, annotate_delivery
            delivery = Delivery(method=event.method, path=event.path, query=event.query, headers=Headers(event.headers),
                                body=event.body, received_us=event.received_us)
            annotate_delivery(delivery, Secrets(), verify=False)  # provider and event type, as a laptop sees them
            self._deliveries[key] = delivery
            while len(self._deliveries) > 4096:
                self._deliveries.popitem(last=False)
        return delivery
