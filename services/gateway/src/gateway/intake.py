"""Checking a campaign's recipients as a stream (no I/O): JSON items or spreadsheet rows in,
chunks of valid recipients out, every problem kept (the first `max_listed` listed, all counted).

A recipient is refused for: a number that is not E.164 (or, with `default_region`, not a valid
number of that region: national formats are read and shown with what they became), the same number
as an earlier recipient (both named), an e-mail that is not one, a recipient id used twice, or
dynamic variables its agent needs that neither the recipient nor the agent's defaults give. Chunks
are at most `chunk_size` recipients whose JSON fits `budget` bytes (one bus message each: see
`bus.limits.pack_to_fit`); a recipient that alone exceeds the budget stops the intake
(`RecipientTooLarge`: 413, as any write too large for the bus).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError

from bus.http_errors import error_message
from contracts.calling import Interval, Number, read_number, zones_for
from contracts.campaigns import CallingWindow, CampaignRecipient
from contracts.quiet_hours import HoursRule, QuietHoursRules, calling_intervals, never_callable_reason
from contracts.text import NUL_MESSAGE, nul_path
from elevenlabs_client import dynamic_variables as variables
from gateway.numbers import NumberReader, Read
from gateway.schemas import NUL_FREE, RECIPIENT_ID_MAX_CHARS, RECIPIENT_NAME_MAX_CHARS, RecipientIn
from gateway.spreadsheets import Entry, spreadsheet_damage

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
_RECIPIENT: TypeAdapter[RecipientIn] = TypeAdapter(RecipientIn)


class RecipientTooLarge(Exception):
    """One recipient alone is more than a bus message can carry (a 413, like any write that
    cannot travel: the rest of the submission is not read)."""

    def __init__(self, ref: dict[str, Any], size: int, budget: int) -> None:
        where = f"row {ref['row']}" if "row" in ref else f"recipient {ref.get('index')}"
        super().__init__(
            f"The {where} takes {size} bytes, more than one message can carry "
            f"({budget} bytes with the submission; BUS_MAX_MESSAGE_BYTES)"
        )


@dataclass(frozen=True)
class AgentNeeds:
    """Dynamic variables the agent's prompt, first message and tools use, and its defaults."""

    required: set[str]
    defaults: dict[str, Any]


@dataclass
class Accepted:
    """A valid recipient: where it came from, what was given, what it became, its report line."""

    ref: dict[str, Any]
    given: str
    recipient: CampaignRecipient
    time_zones: tuple[str, ...]
    place: tuple[str | None, tuple[str, ...]]  # ISO region and USPS states: which quiet hours bind it
    size: int  # bytes of its JSON in a chunk
    listed: dict[str, Any] | None  # its line in the answer's `recipients`, if within the list cap


# The id `Intake.check` gives a recipient without one: this prefix and its row (file) or index
# (JSON); the patterns tell a given id of that shape (no leading zero: "r07" is not index 7's).
_ASSIGNED_PREFIX = {True: "row", False: "r"}
_ASSIGNED = {in_file: re.compile(prefix + "(0|[1-9][0-9]*)") for in_file, prefix in _ASSIGNED_PREFIX.items()}


def json_entries(items: Iterable[Any], *, may_hold_nul: bool = True) -> Iterator[Entry]:
    """Entries of a JSON submission's `recipients` (`ref` = `{"index"}`, 0-based).
    `may_hold_nul` False: the body is known to hold no NUL (`jsonbody.SplitBody.may_hold_nul`),
    and the per-recipient search for one is skipped."""
    context = None if may_hold_nul else {NUL_FREE: True}
    for index, item in enumerate(items):
        ref = {"index": index}
        try:
            r = _RECIPIENT.validate_python(item, context=context)
        except ValidationError as exc:
            given = item.get("phone_number") if isinstance(item, dict) else None
            yield Entry(
                ref=ref,
                phone=None,
                phone_ref={},
                readable=False,
                problems=[
                    ref
                    | ({"phone_number": given} if isinstance(given, str) else {})
                    | {
                        "field": ".".join(str(p) for p in err["loc"]) or "recipient",
                        "error": error_message(err),
                    }
                    for err in exc.errors()
                ],
            )
            continue
        entry = Entry(
            ref=ref,
            phone=r.phone_number,
            phone_ref={},
            name=r.name,
            email=r.email,
            recipient_id=r.id,
            variables=dict(r.dynamic_variables),
        )
        if (why := spreadsheet_damage(r.phone_number)) is not None:  # pasted from a spreadsheet
            entry.phone = None
            entry.problems.append(ref | {"phone_number": r.phone_number, "error": why})
        yield entry


@dataclass
class Intake:
    """The running check of one submission. Feed it with `chunks(entries)`; read the counts,
    `problems` and `report()` as it goes or afterwards."""

    needs: AgentNeeds
    default_region: str | None
    campaign_zone: str | None
    chunk_size: int
    budget: int
    max_listed: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0  # problems found, listed or not
    rows: int = 0  # recipients read (blank spreadsheet rows excluded)
    accepted: int = 0
    converted: int = 0
    duplicates: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)
    zone_counts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    # Row (or index) of each number and id seen: ints, not refs, since 100,000 of each are kept.
    _first: dict[int, int] = field(default_factory=dict)  # keyed by the E.164 digits: an int is half a str
    _ids: dict[str, int] = field(default_factory=dict)  # ids given in the submission
    # The places whose id was assigned ("row7", "r7"), one byte each: kept as a dict of strs they
    # took 12 MiB for 100,000 recipients.
    _assigned: bytearray = field(default_factory=bytearray)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def _problem(self, problem: dict[str, Any]) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_listed:
            self.problems.append(problem)

    def check(self, item: Entry, read: Number | str | None) -> Accepted | None:
        """The recipient `item` gives, or None after recording each of its problems. `read` is
        `read_number(item.phone, default_region)` (None when it has no phone text)."""
        self.rows += 1
        found = len(item.problems)
        for problem in item.problems:
            self._problem(problem)
        if not item.readable:
            return None
        ref = item.ref
        in_file = "row" in ref
        place: int = ref["row"] if in_file else ref["index"]
        number: Number | None = None
        if item.phone is not None and read is not None:
            if isinstance(read, str):
                found += 1
                self._problem(ref | item.phone_ref | self._value(item.phone, in_file) | {"error": read})
            else:
                number = read
                digits = int(number.e164[1:])
                first = self._first.get(digits)
                if first is not None:
                    found += 1
                    self.duplicates += 1
                    where = f"row {first}" if in_file else f"index {first}"
                    self._problem(
                        ref
                        | item.phone_ref
                        | self._value(item.phone, in_file)
                        | {
                            "error": f"duplicate phone number: the same number as {where}",
                            ("duplicate_of_row" if in_file else "duplicate_of"): first,
                        }
                    )
                else:
                    self._first[digits] = place
        if in_file and item.may_hold_nul:  # a JSON recipient's text was checked by its schema (schemas.NoNul)
            cells: dict[str, Any] = {"name": item.name, "email": item.email, "id": item.recipient_id}
            cells |= item.variables
            if (nul_at := nul_path(cells)) is not None:
                found += 1
                self._problem(ref | item.refs.get(nul_at, {"header": nul_at}) | {"error": NUL_MESSAGE})
        if in_file:  # a JSON recipient's name and id were checked with its schema
            for role, text, limit in (
                ("name", item.name, RECIPIENT_NAME_MAX_CHARS),
                ("id", item.recipient_id, RECIPIENT_ID_MAX_CHARS),
            ):
                if text is not None and len(text) > limit:
                    found += 1
                    self._problem(
                        ref
                        | item.refs.get(role, {"header": role})
                        | {"error": f"At most {limit:,} characters ({len(text):,} given)"}
                    )
        if item.email is not None and in_file:  # a JSON recipient's e-mail was checked with its schema
            try:
                _EMAIL.validate_python(item.email)
            except ValidationError:
                found += 1
                self._problem(
                    ref
                    | item.refs.get("email", {"header": "email"})
                    | {"value": item.email, "error": "Not an e-mail address"}
                )
        if self.needs.required and (
            missing := variables.unmet(self.needs.required, item.variables, self.needs.defaults)
        ):
            found += 1
            self._problem(
                ref
                | ({} if in_file or item.phone is None else {"phone_number": item.phone})
                | {
                    "error": f"Missing dynamic variables: {', '.join(missing)}",
                    "missing_dynamic_variables": missing,
                }
            )
        recipient_id = item.recipient_id or f"{_ASSIGNED_PREFIX[in_file]}{place}"
        other = self._id_seen(recipient_id, place, given=item.recipient_id is not None, in_file=in_file)
        if other is not None:
            found += 1
            self._problem(
                ref
                | ({} if in_file or item.phone is None else {"phone_number": item.phone})
                | item.refs.get("id", {})
                | {
                    "error": "duplicate recipient id" + (f": the same id as row {other}" if in_file else ""),
                    "id": recipient_id,
                }
            )
        if found or number is None:
            return None
        recipient = CampaignRecipient(
            recipient_id=recipient_id,
            phone_number=number.e164,
            name=item.name,
            email=item.email,
            dynamic_variables=item.variables,
        )
        zones = zones_for(number.zones, self.campaign_zone)
        size = len(recipient.model_dump_json()) + 1  # and its comma in the list
        return Accepted(
            item.ref, item.phone or "", recipient, zones, (number.region, number.states), size, None
        )

    def _id_seen(self, recipient_id: str, place: int, *, given: bool, in_file: bool) -> int | None:
        """The place of an earlier recipient with the same id, else None (and the id is recorded).
        An assigned id is `row<place>` (file) or `r<place>` (JSON): a given id of that shape
        collides with it when that earlier place was assigned its id."""
        if (other := self._ids.get(recipient_id)) is not None:
            return other
        if given:
            match = _ASSIGNED[in_file].fullmatch(recipient_id)
            if (
                match is not None
                and (earlier := int(match[1])) < len(self._assigned)
                and self._assigned[earlier]
            ):
                return earlier
            self._ids[recipient_id] = place
            return None
        if place >= len(self._assigned):
            self._assigned.extend(bytes(max(place + 1 - len(self._assigned), len(self._assigned))))
        self._assigned[place] = 1
        return None

    @staticmethod
    def _value(given: str, in_file: bool) -> dict[str, Any]:
        return {"value": given} if in_file else {"phone_number": given}

    def _reads(self, entries: Iterator[Entry], reader: NumberReader | None) -> Iterator[tuple[Entry, Read]]:
        """Each entry with its number read: by `reader`'s processes a batch at a time, as many
        batches ahead as it has processes, else here."""
        region = self.default_region
        if reader is None or reader.processes == 0:
            for item in entries:
                yield item, (None if item.phone is None else read_number(item.phone, region))
            return
        pending: deque[tuple[list[Entry], Future[list[Read]]]] = deque()
        while batch := list(itertools.islice(entries, self.chunk_size)):
            pending.append((batch, reader.submit([item.phone for item in batch], region)))
            if len(pending) > reader.processes:
                done, numbers = pending.popleft()
                yield from zip(done, numbers.result(), strict=True)
        while pending:
            done, numbers = pending.popleft()
            yield from zip(done, numbers.result(), strict=True)

    def chunks(
        self, entries: Iterator[Entry], reader: NumberReader | None = None
    ) -> Iterator[list[Accepted]]:
        """The valid recipients of `entries` in chunks that each fit one bus message."""
        chunk: list[Accepted] = []
        used = 0
        for item, read in self._reads(entries, reader):
            accepted = self.check(item, read)
            if accepted is None:
                continue
            if accepted.size > self.budget:
                raise RecipientTooLarge(accepted.ref, accepted.size, self.budget)
            self.accepted += 1
            self.zone_counts[accepted.time_zones] += 1
            e164 = accepted.recipient.phone_number
            if accepted.given.strip() != e164:
                self.converted += 1
            if len(self.listed) < self.max_listed:
                line = accepted.ref | {"phone_number": e164, "time_zones": list(accepted.time_zones)}
                if accepted.given != e164:
                    line["given"] = accepted.given
                self.listed.append(line)
                accepted.listed = line
            if chunk and (used + accepted.size > self.budget or len(chunk) >= self.chunk_size):
                yield chunk
                chunk, used = [], 0
            chunk.append(accepted)
            used += accepted.size
        if chunk:
            yield chunk

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "recipients": self.accepted,
            "problems": self.problem_count,
            "converted": self.converted,
            "duplicates": self.duplicates,
        }

    def time_zones(self) -> list[dict[str, Any]]:
        """How many recipients are called in each set of zones, largest first."""
        return [
            {"time_zones": list(zones), "recipients": count}
            for zones, count in self.zone_counts.most_common()
        ]


# ---- how long a campaign takes ------------------------------------------------------------------

ESTIMATE_WEEKS = 53
ESTIMATE_ASSUMES = (
    "each recipient is called once and every call lasts the average call time, with as many calls "
    "in flight as the concurrency allows whenever a recipient's calling window and the platform's "
    "quiet hours are open; retries, "
    "unanswered calls, ringing and the time between calls are not counted"
)


GroupKey = tuple[tuple[str, ...], tuple[str, ...]]  # (zones, names of its quiet-hours rules)


@dataclass
class Callability:
    """When a campaign's recipients may be rung: its calling `window` (None: always) and the
    platform's `quiet_hours`, answered per group of recipients that share zones and rules (a few
    dozen groups for 100,000 recipients) and remembered per group."""

    window: CallingWindow | None
    quiet_hours: QuietHoursRules
    _rules: dict[str, HoursRule] = field(default_factory=dict)
    _never: dict[GroupKey, str | None] = field(default_factory=dict)
    _keys: dict[tuple[tuple[str | None, tuple[str, ...]], tuple[str, ...]], GroupKey] = field(
        default_factory=dict
    )

    def key(self, place: tuple[str | None, tuple[str, ...]], zones: tuple[str, ...]) -> GroupKey:
        """The group of a recipient who rings in `place` (region, states) and `zones` (asked once
        per recipient of a 100,000-row file, answered from a few dozen)."""
        key = self._keys.get((place, zones))
        if key is None:
            rules = self.quiet_hours.for_place(*place)
            for rule in rules:
                self._rules.setdefault(rule.name, rule)
            key = self._keys[(place, zones)] = (zones, tuple(rule.name for rule in rules))
        return key

    def never_reason(self, key: GroupKey, now: datetime) -> str | None:
        """Why the group's recipients can never be rung (the campaign fails them), else None."""
        if key not in self._never:
            zones, names = key
            self._never[key] = never_callable_reason(now, self.window, [self._rules[n] for n in names], zones)
        return self._never[key]

    def intervals(self, key: GroupKey, start: datetime, *, weeks: int) -> list[Interval]:
        """[start, end) intervals (UTC) from `start` when the group's recipients may be rung."""
        zones, names = key
        return calling_intervals(start, self.window, [self._rules[n] for n in names], zones, weeks=weeks)


def estimate(
    groups: Counter[GroupKey],
    *,
    concurrency: int,
    call_s: float,
    start: datetime,
    callability: Callability,
) -> dict[str, Any]:
    """How long calling `groups` (recipients per set of zones and quiet-hours rules) takes, from
    `start` (the campaign's start: now or its `scheduled_time_unix`).

    A fluid model: `concurrency` lines each finish a call every `call_s` seconds while at least one
    recipient who may be rung (calling window and quiet hours open) waits; recipients whose hours
    close soonest first. Hours are followed for ESTIMATE_WEEKS weeks; recipients never callable
    (window or quiet hours never open in all of their zones at once) are `not_callable` (the
    campaign fails them). `starts_at_unix` is when the first call can be placed (the first opening
    of any callable group's hours at or after `start`), `duration_seconds` runs from there to
    `finishes_at_unix`; with nobody callable both are null and `starts_at_unix` is `start`.
    """
    start = start.replace(microsecond=0)
    total = sum(groups.values())
    rate = concurrency / call_s  # recipients per second while any open one waits
    openings = {key: callability.intervals(key, start, weeks=ESTIMATE_WEEKS) for key in groups}
    remaining = {key: float(n) for key, n in groups.items() if openings[key]}
    not_callable = total - int(sum(remaining.values()))
    first_call = min((openings[key][0][0] for key in remaining), default=start).replace(microsecond=0)
    out: dict[str, Any] = {"recipients": total, "starts_at_unix": int(first_call.timestamp())}
    if total == 0:
        return out | {"finishes_at_unix": out["starts_at_unix"], "duration_seconds": 0, "not_callable": 0}
    if not remaining:
        return out | {"finishes_at_unix": None, "duration_seconds": None, "not_callable": not_callable}
    bounds = sorted({t for spans in openings.values() for span in spans for t in span})
    finished: datetime | None = None
    cursor = {key: 0 for key in remaining}
    for begin, end in itertools.pairwise(bounds):
        if finished is not None:
            break
        open_now: list[tuple[datetime, GroupKey]] = []
        for key in remaining:
            spans = openings[key]
            while cursor[key] < len(spans) and spans[cursor[key]][1] <= begin:
                cursor[key] += 1
            if cursor[key] < len(spans) and spans[cursor[key]][0] <= begin and remaining[key] > 0:
                open_now.append((spans[cursor[key]][1], key))
        waiting = sum(remaining[k] for _, k in open_now)
        if not waiting:
            continue
        capacity = rate * (end - begin).total_seconds()
        open_keys = {k for _, k in open_now}
        if capacity >= waiting and all(remaining[k] == 0 or k in open_keys for k in remaining):
            finished = begin + timedelta(seconds=waiting / rate)
        for _, key in sorted(open_now):
            served = min(capacity, remaining[key])
            remaining[key] -= served
            capacity -= served
    if finished is None:
        return out | {"finishes_at_unix": None, "duration_seconds": None, "not_callable": not_callable}
    seconds = math.ceil(max((finished - first_call).total_seconds(), call_s))
    return out | {
        "finishes_at_unix": out["starts_at_unix"] + seconds,
        "duration_seconds": seconds,
        "not_callable": not_callable,
    }
