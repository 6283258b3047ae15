"""Quiet-hours rules files for sandbox, test and bench stacks (QUIET_HOURS_FILE).

The simulator rings nobody, and suites that are not about quiet hours run at any hour of the day,
so those stacks allow calls around the clock (`NO_QUIET_HOURS`); the quiet-hours suites use the
shipped rules with clocks passed in, or `closed_now` for a stack whose real clock must meet closed
hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

NO_QUIET_HOURS = Path(__file__).parent / "data" / "no_quiet_hours.yaml"

# start == end: the whole day (contracts.calling window semantics).
_ALWAYS = {"source": "test stacks: calls at any hour", "windows": [{"start": "00:00", "end": "00:00"}]}


def write_rules(path: Path, countries: dict[str, dict[str, object]] | None = None) -> Path:
    """A rules file allowing calls at any hour except in `countries` (region -> rule)."""
    path.write_text(yaml.safe_dump({"default": _ALWAYS, "countries": countries or {}}), encoding="utf-8")
    return path


def closed_now(
    zone: str, *, opens_in: timedelta = timedelta(hours=6), now: datetime | None = None
) -> dict[str, object]:
    """A rule whose only window opens `opens_in` from `now` in `zone` and lasts an hour: closed for
    that long, whatever the hour a test starts."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)) + opens_in
    end = local + timedelta(hours=1)
    return {
        "source": "test stacks: closed now",
        "windows": [{"start": local.strftime("%H:%M"), "end": end.strftime("%H:%M")}],
    }
