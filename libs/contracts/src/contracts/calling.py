"""What a number, a time zone and a calling window mean: the rules behind the campaign contract's
fields, shared by the gateway (which checks and previews a submission) and the campaigns service
(which schedules it), so both read a number and a window the same way. Pure functions, no I/O.

Numbers are E.164 (`+` country code and national number) as libphonenumber validates them. A
number's time zones are libphonenumber's for its prefix (several when its region spans zones);
`recipient_time_zones` chooses the ones a calling window applies in (see `SubmitCampaign.timezone`).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType
from phonenumbers import timezone as phone_timezone

from contracts.campaigns import CallingWindow
from contracts.us_states import us_states

E164_ERROR = "Invalid phone number format. Must be E.164 (e.g., +14155551234)"

# ---- numbers ------------------------------------------------------------------------------------


class Number(NamedTuple):
    """A valid number: E.164 text, the zones libphonenumber gives for it ((): unknown), and where
    it rings (`number_place`: ISO region, USPS states of a US number), which picks its quiet hours.
    A named tuple: batches of them travel between processes (gateway.numbers), and a tuple
    pickles five times faster than a frozen dataclass."""

    e164: str
    zones: tuple[str, ...]
    region: str | None = None
    states: tuple[str, ...] = ()


def normalize_number(raw: str) -> tuple[str | None, str | None]:
    """(E.164 number, None) when `raw` is a valid E.164 number, else (None, reason)."""
    if not raw.startswith("+"):
        return None, "Phone number must be E.164 (+CountryCode...)"
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None, "Phone number could not be parsed"
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != raw or not phonenumbers.is_valid_number(parsed):
        return None, "Invalid phone number"
    return formatted, None


def read_number(raw: str, default_region: str | None = None) -> Number | str:
    """The valid number `raw` names, or why not (a sentence).

    Without `default_region` only exact E.164 is accepted ("+14155550103"). With one (an ISO
    3166 region such as "US"), a national format of that region ("(415) 555-0103", "415.555.0103",
    "4155550103") or an international one with spaces and punctuation ("+1 415-555-0103") is read
    too; the answer is the number in E.164. One parse and one validation per number: the gateway
    checks 100,000-row files with it.
    """
    text = raw.strip()
    if not text:
        return "No phone number"
    if default_region is None and not text.startswith("+"):
        return f"{E164_ERROR}; got {raw!r} (give default_region to read national numbers)"
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return f"{E164_ERROR}; got {raw!r}"
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if default_region is None and e164 != text:
        return f"{E164_ERROR}; got {raw!r}"
    kind = phonenumbers.number_type(parsed)  # UNKNOWN exactly when is_valid_number is False
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        where = f" for region {default_region}" if default_region and not text.startswith("+") else ""
        return f"Not a valid phone number{where}: {raw!r}"
    region, states = number_place(parsed, kind)
    return Number(e164, _number_zones(parsed, kind, region), region, states)


def number_place(parsed: PhoneNumber, kind: int | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(ISO region, USPS states) of a parsed number: the region from libphonenumber, the states (US
    numbers only) what libphonenumber's geocoder says for the number's area code and exchange
    ("Hialeah, FL", "Florida"), read from its table (`contracts.us_states.us_states`: two where
    the exchange lies in another state than its area code); () where unknown (invalid numbers,
    toll-free +1 800, a description naming no state). `kind`: its `phonenumbers.number_type`, when already known."""
    region = phonenumbers.region_code_for_number(parsed)
    if region != "US":
        return region, ()
    kind = phonenumbers.number_type(parsed) if kind is None else kind
    if kind == PhoneNumberType.UNKNOWN or not phonenumbers.is_number_type_geographical(kind, 1):
        return region, ()  # the geocoder names only the country: no state
    return region, us_states(f"1{parsed.national_number}")


def region_problem(region: str) -> str | None:
    """Why `region` cannot be a `default_region`, or None (an ISO 3166-1 alpha-2 code libphonenumber knows)."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return f"Unknown region {region!r}: use an ISO 3166-1 alpha-2 code such as US, GB or DE"
    return None


def number_time_zones(e164: str) -> tuple[str, ...]:
    """Every IANA zone the number may ring in (`_number_zones`: several when its area spans
    zones, +61 8 is Adelaide and Perth, +1 800 is all of NANP); () when unknown (e.g. +800)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    return _number_zones(
        parsed, phonenumbers.number_type(parsed), phonenumbers.region_code_for_number(parsed)
    )


# A person's line (not toll-free, premium, shared-cost, VoIP...): it rings in its own country.
_PERSONAL_LINES = frozenset(
    {PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
_NARROWED: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}


def _number_zones(parsed: PhoneNumber, kind: int, region: str | None) -> tuple[str, ...]:
    """The zones libphonenumber gives for a valid number, narrowed to its country's zones (the
    IANA database's zone.tab) for a person's line. libphonenumber has no zones for some exchanges
    (+1 876 555, a Jamaican mobile) and answers with all 42 of NANP's; a Jamaican line rings in
    Jamaica. Kept as given when the country's zones are unknown or share none with them."""
    if phonenumbers.is_number_type_geographical(kind, parsed.country_code or 0):
        given = phone_timezone.time_zones_for_geographical_number(parsed)
    else:  # the country's zones (libphonenumber types the number again: not in the hot path)
        given = phone_timezone.time_zones_for_number(parsed)
    found = _known_zones(tuple(given))
    if kind not in _PERSONAL_LINES or not region or len(found) < 2:
        return found
    key = (found, region)
    narrowed = _NARROWED.get(key)
    if narrowed is None:
        own, listed = _country_zones().get(region, frozenset()), _listed_zones()
        # Only zones zone.tab gives another country go: a name it does not list (libphonenumber
        # still says Pacific/Ponape, zone.tab Pacific/Pohnpei) may be one of the country's own.
        narrowed = tuple(z for z in found if z in own or z not in listed) if own else found
        narrowed = _NARROWED[key] = narrowed or found
    return narrowed


@functools.cache
def _listed_zones() -> frozenset[str]:
    return frozenset().union(*_country_zones().values())


@functools.cache
def _country_zones() -> dict[str, frozenset[str]]:
    """ISO 3166 country code -> its IANA zones, from the tzdata package's zone.tab."""
    table: dict[str, set[str]] = {}
    text = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.split("\t")[:3]
            table.setdefault(code, set()).add(name)
    return {code: frozenset(names) for code, names in table.items()}


_ZONE_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _known_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    # A few hundred distinct prefix answers: remembered, so 100,000 numbers check zoneinfo rarely.
    known = _ZONE_NAMES.get(zones)
    if known is None:
        known = _ZONE_NAMES[zones] = tuple(z for z in zones if z != "Etc/Unknown" and _zone(z) is not None)
    return known


def recipient_time_zones(e164: str, campaign_zone: str | None) -> tuple[str, ...]:
    """The zones a recipient's calling window is applied in (see `zones_for`)."""
    return zones_for(number_time_zones(e164), campaign_zone)


def zones_for(number_zones: tuple[str, ...], campaign_zone: str | None) -> tuple[str, ...]:
    """The zones a calling window is applied in for a number in `number_zones`.

    The campaign's zone when it is one of the number's zones (the submitter knows where their
    customers are); else every zone of the number (the window must be open in all of them); a number
    with no known zone uses the campaign's zone, else UTC.
    """
    if campaign_zone and campaign_zone in number_zones:
        return (campaign_zone,)
    if number_zones:
        return number_zones
    if campaign_zone and _zone(campaign_zone) is not None:
        return (campaign_zone,)
    return ("UTC",)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# ---- calling windows ----------------------------------------------------------------------------

Interval = tuple[datetime, datetime]


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _openings(
    now: datetime, start: time, end: time, days: set[int], zone: ZoneInfo, *, first: int, last: int
) -> list[Interval]:
    """The window's [opening, closing) intervals in one zone (UTC), opening on the local dates
    from `first` to `last` days after `now`'s UTC date (both included)."""
    today = now.astimezone(UTC).date()
    out: list[Interval] = []
    for offset in range(first, last + 1):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        close_day = day if start < end else day + timedelta(days=1)
        opening = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
        closing = datetime.combine(close_day, end, tzinfo=zone).astimezone(UTC)
        if out and opening <= out[-1][1]:  # a whole-day window on consecutive days: one interval
            out[-1] = (out[-1][0], max(out[-1][1], closing))
        else:
            out.append((opening, closing))
    return out


def intersect_intervals(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The overlaps of two sorted lists of disjoint [start, end) intervals, sorted."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _open_in_all(
    now: datetime, window: CallingWindow, zones: Sequence[str], *, first: int, last: int
) -> list[Interval] | None:
    """The intervals when the window is open in every zone, or None for a malformed window."""
    try:
        start, end = _hhmm(window.start), _hhmm(window.end)
    except ValueError:
        return None
    days = {d % 7 for d in window.days}
    open_in_all: list[Interval] | None = None
    for name in list(zones) or ["UTC"]:
        intervals = _openings(now, start, end, days, _zone(name) or ZoneInfo("UTC"), first=first, last=last)
        open_in_all = intervals if open_in_all is None else intersect_intervals(open_in_all, intervals)
    return open_in_all or []


def next_dial_time(
    now: datetime, window: CallingWindow | None, zones: str | Sequence[str]
) -> datetime | None:
    """When a recipient whose calling window applies in `zones` may be dialled: `now` if the
    window is open in every zone, else the next moment it is (UTC); None if that never happens
    within a week (no allowed day, a malformed window, or zones too far apart for the window, e.g.
    09:00-10:00 in both Perth and Sydney).

    The window is [start, end) in local wall-clock time, opening on an allowed weekday (0 = Monday);
    start > end crosses midnight (the part after midnight belongs to the day it opened); start == end
    means the whole day. Several zones: it opens at the latest of their openings and closes at the
    earliest closing. Local times are resolved with zoneinfo, so DST shifts are honoured.
    """
    if window is None:
        return now
    names = [zones] if isinstance(zones, str) else list(zones)
    # Every local date near `now` in any zone, plus a full week ahead.
    for opening, closing in _open_in_all(now, window, names, first=-2, last=10) or []:
        if opening <= now < closing:
            return now
        if opening > now:
            return opening
    return None


def open_intervals(
    start: datetime, window: CallingWindow, zones: Sequence[str], *, weeks: int
) -> Iterator[Interval]:
    """The [opening, closing) intervals (UTC) when `window` is open in every one of `zones`, from
    `start` for `weeks` weeks, clipped to begin no earlier than `start`; computed a week at a time.
    Same window semantics as `next_dial_time`."""
    for week in range(weeks):
        # Local dates from two days before `start`'s UTC date (any zone's today), then 7 a week.
        first = -2 if week == 0 else week * 7
        for opening, closing in _open_in_all(start, window, zones, first=first, last=week * 7 + 6) or []:
            if closing > start:
                yield max(opening, start), closing


def never_open_reason(window: CallingWindow, zones: Sequence[str]) -> str:
    """The recipient-facing reason when `next_dial_time` is None."""
    if len(zones) > 1:
        return (
            f"The calling window {window.start}-{window.end} is never open in all of the number's "
            f"time zones at once ({', '.join(zones)}); give the campaign a timezone that is one of them"
        )
    return "The calling window never opens"


def read_numbers(raws: list[str | None], default_region: str | None = None) -> list[Number | str | None]:
    """`read_number` of each (None for None): one call per batch, for a worker process."""
    return [None if raw is None else read_number(raw, default_region) for raw in raws]
