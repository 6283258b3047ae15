"""The outbox relay's claims: no second claim straight after one that found fewer rows than it
asked for, unless a NOTIFY says more were queued.

faststream-outbox (0.19, the release we pin; `OutboxSubscriber._fetch_inner`) claims again at once
after every claim that found rows, so that a backlog drains without waiting. When rows trickle in
one transaction at a time, as a campaign's do, that second claim finds nothing, and so does the
one the library's worker wakes when it takes the row: a row cost three claims, and the relays' claims (a lease `UPDATE … FOR UPDATE SKIP LOCKED` over the
outbox) were ~14 of the ~85 statements a campaign call costs PostgreSQL (bench/README, issue 17).

A claim that found fewer rows than it asked for took every due row it could lock when it ran. A
row committed later sends a NOTIFY (every INSERT into the outbox does, once per transaction; only
future-dated rows do not). So `ClaimGate` skips a claim that would run within `window_s` of such a
short claim when no NOTIFY for this relay's queues has arrived since the short claim began: the
library then waits, as after an empty claim, for the next NOTIFY or its backoff poll. Rows that
become due without a NOTIFY (a retry's backoff, a dead relay's lease running out) are found by
that poll, as before; a NOTIFY that lands while a claim runs is never skipped (it may be for a row
the claim could not see). So are due rows another transaction had locked when the short claim ran
(SKIP LOCKED: a second replica's claim that then rolled back): they wait for the next claim, at
most the library's backoff poll (`max_fetch_interval`), where the immediate second claim often took
them.

Installed by `install` on the relay's client and its LISTEN callback; a faststream-outbox without
the callback (`_on_notify`) gets no gate (`bus.claim_gate.unsupported`, logged once), so it claims
as the library does. `libs/bus/tests/test_claims.py` pins the callback against the installed
release.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import structlog

log = structlog.get_logger("bus.claims")

_LISTEN_CALLBACK = "_on_notify"


class ClaimGate:
    """Whether the relay's next claim should run (`begin`), from what its last claim found
    (`end`) and the NOTIFYs for its queues (`notified`). `clock` is monotonic seconds."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._notifications = 0
        self._short_ticket: int | None = None  # notifications seen when the last short claim began
        self._short_until = 0.0
        self.last_skipped = False  # whether the latest claim was skipped (for the claims metric)

    def reset(self) -> None:
        """Forget the last claim (a relay (re)starting claims at once)."""
        self._short_ticket = None
        self.last_skipped = False

    def notified(self) -> None:
        """A NOTIFY for one of the relay's queues arrived."""
        self._notifications += 1

    @property
    def notifications(self) -> int:
        """NOTIFYs counted so far."""
        return self._notifications

    def begin(self) -> int | None:
        """None: skip this claim (nothing was announced since a short claim a moment ago); else
        the ticket to pass to `end`."""
        if (
            self._short_ticket is not None
            and self._notifications == self._short_ticket
            and self._clock() < self._short_until
        ):
            self.last_skipped = True
            return None
        self.last_skipped = False
        self._short_ticket = None
        return self._notifications

    def end(self, ticket: int, found: int, limit: int) -> None:
        """The claim that `begin` let run found `found` rows of the `limit` it asked for."""
        if 0 < found < limit:
            self._short_ticket = ticket
            self._short_until = self._clock() + self.window_s
        else:
            self._short_ticket = None


def install(client: Any, subscriber: Any, queues: Collection[str], gate: ClaimGate) -> bool:
    """Put `gate` in front of `client.fetch` (faststream-outbox's `OutboxClient`, shared by the
    broker's publisher, whose inserts are left alone) and count the NOTIFYs `subscriber` (the
    relay's `OutboxSubscriber`) receives for `queues`; False (nothing changed) when the installed
    faststream-outbox has no LISTEN callback to count them by."""
    on_notify = getattr(subscriber, _LISTEN_CALLBACK, None)
    if on_notify is None or not callable(on_notify):
        log.warning("bus.claim_gate.unsupported", reason="faststream-outbox has no LISTEN callback to count")
        return False
    fetch = client.fetch

    def counted(*args: object) -> None:
        # asyncpg calls it with (connection, pid, channel, payload); the payload is the row's queue.
        payload = args[3] if len(args) >= 4 else None
        if payload is None or payload in queues:
            gate.notified()
        on_notify(*args)

    async def gated_fetch(conn: Any, queues_: Any, *, limit: int, lease_ttl_seconds: float) -> list[Any]:
        ticket = gate.begin()
        if ticket is None:
            return []
        rows: list[Any] = await fetch(conn, queues_, limit=limit, lease_ttl_seconds=lease_ttl_seconds)
        gate.end(ticket, len(rows), limit)
        return rows

    setattr(subscriber, _LISTEN_CALLBACK, counted)
    client.fetch = gated_fetch
    return True
