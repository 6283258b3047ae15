"""The relay's claim gate (bus.claims), on a clock passed in, and its hooks into faststream-outbox."""

from __future__ import annotations

import inspect

from faststream_outbox.client import OutboxClient
from faststream_outbox.subscriber.usecase import OutboxSubscriber

from bus.claims import ClaimGate, install

LIMIT = 50


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _short_claim(gate: ClaimGate, found: int = 1) -> None:
    ticket = gate.begin()
    assert ticket is not None
    gate.end(ticket, found, LIMIT)


def test_the_claim_straight_after_a_short_one_is_skipped_until_a_notify() -> None:
    clock = Clock()
    gate = ClaimGate(window_s=0.05, clock=clock)
    _short_claim(gate)
    # The library claims again at once (and again when its worker takes the row): nothing new
    # was announced, so both are skipped.
    assert gate.begin() is None and gate.last_skipped
    clock.now += 0.01
    assert gate.begin() is None
    gate.notified()  # the next row's transaction committed
    assert gate.begin() is not None and not gate.last_skipped


def test_a_notify_that_lands_while_the_short_claim_runs_is_not_skipped() -> None:
    gate = ClaimGate(window_s=0.05, clock=Clock())
    ticket = gate.begin()
    assert ticket is not None
    gate.notified()  # a row committed after the claim's snapshot: it may not have seen it
    gate.end(ticket, 1, LIMIT)
    assert gate.begin() is not None


def test_after_the_window_the_relay_claims_as_the_library_does() -> None:
    """Rows due without a NOTIFY (a retry's backoff, a dead relay's lease) are found by its poll."""
    clock = Clock()
    gate = ClaimGate(window_s=0.05, clock=clock)
    _short_claim(gate)
    clock.now += 0.05
    assert gate.begin() is not None


def test_a_full_claim_or_an_empty_one_is_followed_at_once() -> None:
    gate = ClaimGate(window_s=0.05, clock=Clock())
    _short_claim(gate, found=LIMIT)  # a backlog: drain it without waiting
    ticket = gate.begin()
    assert ticket is not None
    gate.end(ticket, 0, LIMIT)  # empty: the library waits by itself
    assert gate.begin() is not None


def test_the_installed_faststream_outbox_has_what_the_gate_hooks_into() -> None:
    """When a release drops these, `install` must be revisited (it refuses without the callback)."""
    assert callable(getattr(OutboxSubscriber, "_on_notify", None))
    fetch = inspect.signature(OutboxClient.fetch).parameters
    assert list(fetch)[:3] == ["self", "conn", "queues"]
    assert fetch["limit"].kind is fetch["lease_ttl_seconds"].kind is inspect.Parameter.KEYWORD_ONLY


async def test_install_counts_only_its_own_queues_notifies_and_gates_the_fetch() -> None:
    calls: list[int] = []

    class Client:
        async def fetch(
            self, conn: object, queues: object, *, limit: int, lease_ttl_seconds: float
        ) -> list[int]:
            calls.append(limit)
            return [1]

    class Subscriber:
        woken = 0

        def _on_notify(self, *args: object) -> None:
            self.woken += 1

    client, subscriber = Client(), Subscriber()
    gate = ClaimGate(window_s=60.0, clock=Clock())
    assert install(client, subscriber, ["mine"], gate)
    assert await client.fetch(None, ["mine"], limit=LIMIT, lease_ttl_seconds=5) == [1]
    assert await client.fetch(None, ["mine"], limit=LIMIT, lease_ttl_seconds=5) == []  # skipped
    subscriber._on_notify(None, 1, "outbox_outbox", "another-service")
    assert await client.fetch(None, ["mine"], limit=LIMIT, lease_ttl_seconds=5) == []
    subscriber._on_notify(None, 1, "outbox_outbox", "mine")
    assert await client.fetch(None, ["mine"], limit=LIMIT, lease_ttl_seconds=5) == [1]
    assert calls == [LIMIT, LIMIT] and subscriber.woken == 2  # the library's callback still runs


def test_install_refuses_a_subscriber_without_the_listen_callback() -> None:
    class Client:
        async def fetch(self) -> None: ...

    client = Client()
    original = client.fetch
    assert not install(client, object(), ["mine"], ClaimGate(window_s=0.05))
    assert client.fetch == original


def test_a_reset_gate_claims_at_once() -> None:
    """A relay started again right after a short claim: rows queued while it was stopped sent
    their NOTIFY to nobody."""
    gate = ClaimGate(window_s=0.05, clock=Clock())
    _short_claim(gate)
    gate.reset()
    assert gate.begin() is not None
