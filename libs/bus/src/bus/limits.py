"""How big a bus message may be: the one check every producer uses before a message is written.

A Kafka broker refuses a record over its `message.max.bytes` (1 MiB by default; a topic may lower it
with `max.message.bytes`), and aiokafka refuses one over its `max_request_size` before sending. A
message written to the outbox that cannot travel would be retried for ever, so producers measure it
first and refuse the write (the gateway answers 413) or carry the bulk another way (chunk it, or store
it and put a reference in the message). `BUS_MAX_MESSAGE_BYTES` is the limit; the bus checks at start
that the broker accepts at least that much.

    from bus.limits import check_fits, message_size

    check_fits(body, headers, limit=settings.bus_max_message_bytes)   # raises MessageTooLarge
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

#: Per-record bytes Kafka adds around key, value and headers (record batch header 61 bytes, record
#: framing and varints), rounded up generously so a message that "fits" is never refused.
RECORD_OVERHEAD_BYTES = 512
#: What `BUS_MAX_MESSAGE_BYTES` defaults to: under Kafka's default `message.max.bytes` (1048588) and
#: aiokafka's default `max_request_size` (1048576) with room for the overhead.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


class MessageTooLarge(ValueError):
    """A message of `size` bytes (serialized, with headers) does not fit the bus limit `limit`."""

    def __init__(self, size: int, limit: int, what: str = "message") -> None:
        super().__init__(
            f"The {what} is {size} bytes once serialized; the bus carries at most {limit} bytes "
            "per message (BUS_MAX_MESSAGE_BYTES)"
        )
        self.size = size
        self.limit = limit
        self.what = what


def message_size(
    body: bytes, headers: Mapping[str, str | bytes] | None = None, key: bytes | None = None
) -> int:
    """Bytes the broker counts for one record: body, key, headers and the record overhead."""
    size = len(body) + len(key or b"") + RECORD_OVERHEAD_BYTES
    for name, value in (headers or {}).items():
        size += len(name.encode()) + len(value if isinstance(value, bytes) else value.encode())
    return size


def fits(body: bytes, headers: Mapping[str, str | bytes] | None = None, *, limit: int) -> bool:
    """Whether the record fits `limit` bytes (`BUS_MAX_MESSAGE_BYTES`)."""
    return message_size(body, headers) <= limit


def check_fits(
    body: bytes,
    headers: Mapping[str, str | bytes] | None = None,
    *,
    limit: int,
    what: str = "message",
) -> int:
    """The record's size in bytes, or `MessageTooLarge` when it exceeds `limit`."""
    size = message_size(body, headers)
    if size > limit:
        raise MessageTooLarge(size, limit, what)
    return size


def is_too_large(exc: BaseException) -> bool:
    """Whether `exc` says a message is over a size limit: ours, aiokafka's or the broker's."""
    return isinstance(
        exc, MessageTooLarge | MessageSizeTooLargeError | RecordListTooLargeError | RecordTooLargeError
    )


#: What a bus message's headers (ids, type, trace context, routing) take at most, for packing.
HEADERS_ALLOWANCE_BYTES = 1024


def pack_to_fit(item_sizes: Sequence[int], *, budget: int, max_items: int) -> list[range]:
    """Split items, in order, into consecutive runs of at most `max_items` whose sizes sum to at
    most `budget` bytes: for carrying a long list in several messages (chunked by bytes).

    `budget` is what one message leaves for the items: `limit - HEADERS_ALLOWANCE_BYTES -
    RECORD_OVERHEAD_BYTES - <the message without items>`; an item's size is its serialized JSON
    plus one for the comma. A single item over the budget gets a run of its own (the producer's
    `check_fits` then refuses it). Returns index ranges into the list.
    """
    runs: list[range] = []
    start, used = 0, 0
    for index, size in enumerate(item_sizes):
        if index > start and (used + size > budget or index - start >= max_items):
            runs.append(range(start, index))
            start, used = index, 0
        used += size
    if start < len(item_sizes):
        runs.append(range(start, len(item_sizes)))
    return runs
