"""Fetch pacing: a consumer that has had nothing to read for a while polls the broker less often.

A Kafka fetch carries `fetch.max.wait.ms`: how long the broker may hold it when there is no data.
Kafka answers it as soon as data arrives (KIP-74 fetch semantics, `fetch.min.bytes` = 1), so a long
wait costs no latency and an idle consumer sends one request per wait. The embedded broker
(Tansu, `devinfra.broker`) answers a held fetch only when the wait expires, so there the wait is
the latency of every hop and is kept at 10 ms; measured on this stack (2 cores, all services idle,
20 s): 10 consumers fetching 100 times a second cost **835 ms of CPU per second** across the
services, the broker and the kernel, 244 ms with a 100 ms wait.

`FetchPacing` keeps the short wait while messages flow and switches a consumer to
`KAFKA_IDLE_FETCH_MAX_WAIT_MS` once it has read nothing for `KAFKA_IDLE_AFTER_MS`; its first
message after that arrives within one idle wait, and the short wait is back from the next fetch.
Off unless `KAFKA_IDLE_FETCH_MAX_WAIT_MS` is set (with real Kafka it gains nothing).

aiokafka (0.14) has no public way to change a running consumer's wait: the fetcher's
`_fetch_max_wait_ms`, read for every FetchRequest it builds, is set directly. When a release no
longer has it, pacing is off and `bus.fetch_pacing.unsupported` is logged once
(`libs/bus/tests/test_pacing.py` pins the attribute against the installed aiokafka).
"""

from __future__ import annotations

import itertools
from typing import Any

import structlog

log = structlog.get_logger("bus.pacing")

_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"


class FetchPacing:
    """How long one consumer's fetches may wait at the broker: `busy_wait_ms` while it reads,
    `idle_wait_ms` (None: never changed) after `idle_after_ms` without a record."""

    def __init__(self, busy_wait_ms: int, idle_wait_ms: int | None, idle_after_ms: int) -> None:
        self.busy_wait_ms = busy_wait_ms
        self.idle_wait_ms = idle_wait_ms
        self.idle_after_ms = idle_after_ms
        self.idle = False
        self._warned = False

    async def fetch(self, consumer: Any, max_records: int) -> list[Any]:
        """The records `consumer` holds or receives within `idle_after_ms` (at most `max_records`,
        in partition order as `getmany` gives them); [] when none came, after which its fetches
        wait `idle_wait_ms` until a record arrives."""
        records = await consumer.getmany(timeout_ms=self.idle_after_ms, max_records=max_records)
        self.paced(consumer, busy=bool(records))
        return list(itertools.chain.from_iterable(records.values()))

    def paced(self, consumer: Any, *, busy: bool) -> None:
        """Set the consumer's fetch wait for what it just saw (records, or none for a while)."""
        if self.idle_wait_ms is None or self.idle == (not busy):
            return
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, _WAIT_ATTRIBUTE):
            if not self._warned:
                self._warned = True
                log.warning(
                    "bus.fetch_pacing.unsupported", reason="aiokafka's fetcher has no fetch wait to set"
                )
            return
        self.idle = not busy
        setattr(fetcher, _WAIT_ATTRIBUTE, self.busy_wait_ms if busy else self.idle_wait_ms)
