"""Reading many phone numbers on more than one core.

libphonenumber's parse and validation are most of the CPU a 100,000-row submission costs (about
25 µs a number, pure Python, under the GIL), so batches of numbers are read in worker processes
(`BATCH_CHECK_PROCESSES`) while the request's own thread parses the file, checks the rest of each
row and writes the chunks. With 0 processes numbers are read in the calling thread.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor

from contracts.calling import Number, read_numbers

Read = Number | str | None


class NumberReader:
    """Reads batches of numbers (`contracts.calling.read_numbers`), in worker processes when it
    has any. The pool starts on first use (or `warm`) and stops with `close`."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fork of a running gateway would copy its event loop, threads and sockets.
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    def submit(self, raws: list[str | None], default_region: str | None) -> Future[list[Read]]:
        if self.processes == 0:
            done: Future[list[Read]] = Future()
            done.set_result(read_numbers(raws, default_region))
            return done
        return self._executor().submit(read_numbers, raws, default_region)

    def warm(self) -> None:
        """Start the workers now (each loads libphonenumber's metadata), not on a first request."""
        if self.processes:
            for future in [
                self.submit(["+14155550100", "+442079460123"], None) for _ in range(self.processes)
            ]:
                future.result()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
