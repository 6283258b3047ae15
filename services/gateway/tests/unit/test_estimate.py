"""The duration estimate of /batch-calling/validate: concurrency, call length, calling windows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from contracts.campaigns import CallingWindow
from gateway.intake import estimate

MONDAY_8AM_UTC = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_without_a_window_lines_work_in_parallel_and_a_call_takes_its_time() -> None:
    groups = Counter({("America/New_York",): 100})
    assert (
        estimate(groups, concurrency=10, call_s=60, start=MONDAY_8AM_UTC, window=None)["duration_seconds"]
        == 600
    )
    few = estimate(Counter({("UTC",): 3}), concurrency=10, call_s=60, start=MONDAY_8AM_UTC, window=None)
    assert few["duration_seconds"] == 60  # three calls at once still take a call's time


def test_calls_wait_for_the_window_and_stop_when_it_closes() -> None:
    window = CallingWindow(start="09:00", end="10:00", days=[0, 1, 2, 3, 4])
    # 90 minutes of calling on one line, an hour a day from 09:00 UTC: Monday 09:00 to Tuesday 09:30.
    result = estimate(Counter({("UTC",): 90}), concurrency=1, call_s=60, start=MONDAY_8AM_UTC, window=window)
    assert result["finishes_at_unix"] == int(datetime(2026, 3, 3, 9, 30, tzinfo=UTC).timestamp())
    assert result["not_callable"] == 0


def test_recipients_whose_window_never_opens_in_all_their_zones_are_not_callable() -> None:
    window = CallingWindow(start="09:00", end="10:00")
    groups = Counter({("Australia/Perth", "Australia/Sydney"): 5, ("Australia/Perth",): 1})
    result = estimate(groups, concurrency=1, call_s=60, start=MONDAY_8AM_UTC, window=window)
    assert result["not_callable"] == 5 and result["recipients"] == 6
    assert result["duration_seconds"] is not None and result["duration_seconds"] <= 86_400
