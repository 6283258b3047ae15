"""A background job run every few minutes or hours for the life of a process (e.g. retention)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import structlog

from bus.logs import describe_error

log = structlog.get_logger("bus")


class Periodic:
    """Runs `work` every `interval_s` seconds between `start()` and `stop()`.

    The first run comes after a random fraction of the interval, so replicas started together
    (a deploy) spread their runs out instead of all working at once. A failing run is logged and
    the next one still happens: a database blip must not end the job for the process lifetime.
    """

    def __init__(self, name: str, interval_s: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        delay = random.uniform(0, self.interval_s)  # noqa: S311 - spreading replicas, not security
        while True:
            await asyncio.sleep(delay)  # the schedule itself, not synchronisation
            try:
                await self._work()
            except Exception as exc:
                log.exception(f"{self.name}.failed", error=describe_error(exc))
            delay = self.interval_s
