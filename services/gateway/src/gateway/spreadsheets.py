"""Recipient spreadsheets (CSV and XLSX) read the way ElevenLabs' batch calling reads them, as a
stream of rows: the file is never held whole (CSV is decoded and parsed line by line from the
spooled upload; XLSX is read with openpyxl in read-only mode, its rows streamed from the sheet's XML).

Columns (ElevenLabs, "Batch calling": a `phone_number` column is mandatory, every other column is
passed to the call as a dynamic variable):

- the phone column: `phone_number`, or one of the usual names `phone`, `number`, `to_number`,
  `mobile` (case, spaces and hyphens ignored: "Phone Number" is `phone_number`);
- optional `name`, `email`, `id`: the recipient's name, e-mail (for e-mail templates) and id;
- `language`, `first_message`, `system_prompt`, `voice_id` are ElevenLabs' per-call override
  columns; campaigns here carry no overrides, so such a column is refused (rename it to use it as
  a dynamic variable) rather than silently sent as a variable;
- every other column is a dynamic variable named by its header as written; an empty cell gives no
  variable (the agent's default, if any, applies).

Real exports: UTF-8 with or without a byte-order mark (UTF-16 with one, as Excel's "Unicode text"),
comma, semicolon (Excel in many locales) or tab delimiters (sniffed from the header), quoted cells
with line breaks, blank rows anywhere (skipped, yet counted, so row numbers match the spreadsheet:
the header is the first row that is not blank, row 1 unless blank rows come before it; a row of only
delimiters, as `;;;`, is blank). A number a spreadsheet turned into scientific notation (`1.41555501E+10`)
has lost digits: it is an error naming the row, never a guess.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import IO, Any

from contracts.text import NUL, NUL_MESSAGE, without_nul

PHONE_HEADERS = ("phone_number", "phone", "number", "to_number", "mobile")
FIELD_HEADERS = ("name", "email", "id")
# ElevenLabs' batch calling reads these columns as conversation overrides, not variables.
OVERRIDE_HEADERS = ("language", "first_message", "system_prompt", "voice_id")
# What a column can be mapped to (`layout`'s `roles`, the form field `columns`).
ROLES = ("phone_number", "name", "email", "id", "variable", "ignore")
DELIMITERS = (",", ";", "\t")
# Excel's last row: a sheet claiming more is not a spreadsheet export.
MAX_SHEET_ROWS = 1_048_576
MAX_COLUMNS = 500
# XLSX parts are XML, compressed ~10-20x; a part declaring far more than that is a zip bomb.
XLSX_INFLATION = 100

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_DECIMAL = re.compile(r"^\+?\d{6,15}[.,]0+$")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

Value = str | int | float | bool


class SheetError(Exception):
    """The file as a whole cannot be read (not a spreadsheet, no header, no phone column...).

    `problems` name the columns involved, in the error format's detail shape.
    """

    def __init__(self, error: str, problems: list[dict[str, Any]], *, status_code: int = 422) -> None:
        super().__init__(error)
        self.error = error
        self.problems = problems
        self.status_code = status_code


@dataclass(frozen=True)
class Column:
    index: int
    header: str  # as written (trimmed)

    @property
    def letter(self) -> str:
        return column_letter(self.index)

    def ref(self) -> dict[str, Any]:
        return {"column": self.letter, "header": self.header}


@dataclass
class Entry:
    """One recipient as given, before its number is checked: where it came from (`ref`: `{"row"}`
    for a spreadsheet, `{"index"}` for JSON), the phone text and where it sits, the optional fields
    and dynamic variables, and problems its cells already have."""

    ref: dict[str, Any]
    phone: str | None
    phone_ref: dict[str, Any]
    name: str | None = None
    email: str | None = None
    recipient_id: str | None = None
    variables: dict[str, Value] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    readable: bool = True  # False: its fields could not be read at all (checked no further)
    # Where its fields and variables sit ({"column", "header"} by "name", "email", "id" or a
    # variable's header): spreadsheets only, shared by all entries (`Layout.refs`).
    refs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    may_hold_nul: bool = True  # False: a row known to hold no NUL (a CSV record checked whole)


@dataclass(frozen=True)
class Layout:
    phone: Column
    name: Column | None
    email: Column | None
    recipient_id: Column | None
    variables: tuple[Column, ...]
    unnamed: tuple[int, ...]  # columns without a header: must stay empty
    ignored: tuple[int, ...] = ()  # columns the submitter mapped to "ignore": never read

    @cached_property
    def last(self) -> int:
        """The index of the last column with a header."""
        named = (self.phone, self.name, self.email, self.recipient_id, *self.variables)
        return max([c.index for c in named if c is not None] + list(self.ignored))

    @cached_property
    def phone_ref(self) -> dict[str, Any]:  # shared by every entry: never mutated
        return self.phone.ref()

    @cached_property
    def refs(self) -> dict[str, dict[str, Any]]:  # shared by every entry: never mutated
        """Where each field ("name", "email", "id") and each variable (by header) sits."""
        fields = {"name": self.name, "email": self.email, "id": self.recipient_id}
        found = {key: column.ref() for key, column in fields.items() if column is not None}
        return found | {column.header: column.ref() for column in self.variables}


def column_letter(index: int) -> str:
    """The spreadsheet name of the 0-based column `index`: A, B, ..., Z, AA, AB, ..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _key(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def detected_role(header: str) -> str:
    """What a column is by its header alone: one of `ROLES`, or "override" for ElevenLabs'
    override columns (refused unless mapped to something else)."""
    key = _key(header)
    if key in PHONE_HEADERS:
        return "phone_number"
    if key in FIELD_HEADERS:
        return key
    if key in OVERRIDE_HEADERS:
        return "override"
    return "variable"


def _mapping_problems(headers: list[str], roles: Mapping[str, str], row: int) -> list[dict[str, Any]]:
    named = {h.strip() for h in headers}
    problems: list[dict[str, Any]] = []
    for header, role in roles.items():
        if header not in named:
            problems.append({"row": row, "header": header, "error": f"No column {header!r} in the file"})
        elif role not in ROLES:
            problems.append(
                {"row": row, "header": header, "error": f"{role!r} is not one of {', '.join(ROLES)}"}
            )
    return problems


def _how(column: Column, roles: Mapping[str, str]) -> str:
    """A column named for a header problem: its header, letter, and whether `columns` mapped it."""
    return f"{column.header!r} (column {column.letter}, {'mapped' if column.header in roles else 'by its header'})"


def _twice(role: str, first: Column, again: Column, roles: Mapping[str, str]) -> str:
    """Why two columns cannot both be read: both are `role` (a field's name, or a variable's
    header), each by `columns` (mapped) or by its header."""
    if role == "variable":
        return (
            f"The same column twice: {first.header!r} (column {first.letter}) and "
            f"{again.header!r} (column {again.letter}) have the same header"
        )
    return (
        f"Two columns are read as {role}: {_how(first, roles)} and {_how(again, roles)}; "
        "keep one (map the other to variable or ignore, or rename it)"
    )


def layout(headers: list[str], roles: Mapping[str, str] | None = None, *, header_row: int = 1) -> Layout:
    """Which column is what, or a `SheetError` naming every bad header at once. `roles` (header as
    written -> one of `ROLES`) overrides what a header says: a column headed "Number" that holds
    order numbers can be mapped to "variable", one headed "Tel" to "phone_number". `header_row`:
    the header's row number in the sheet, which the problems name."""
    roles = roles or {}
    problems: list[dict[str, Any]] = _mapping_problems(headers, roles, header_row)
    if problems:
        raise SheetError("Invalid column mapping", problems)
    columns = [Column(i, h.strip()) for i, h in enumerate(headers)]
    while columns and not columns[-1].header:  # trailing delimiters of an export
        columns.pop()
    if len(columns) > MAX_COLUMNS:
        raise SheetError("Too many columns", [{"error": f"At most {MAX_COLUMNS} columns"}])
    role = {c.index: roles.get(c.header) or detected_role(c.header) for c in columns if c.header}
    phones = [c for c in columns if role.get(c.index) == "phone_number"]
    ignored = tuple(c.index for c in columns if role.get(c.index) == "ignore")
    fields: dict[str, Column] = {}
    variables: list[Column] = []
    seen: dict[str, Column] = {}
    for column in columns:
        if not column.header or column.index in ignored:
            continue
        key = role[column.index]
        # Detected special columns are named by their normalised header ("phone" and "mobile" are two
        # phone columns, not one twice); mapped ones by their role.
        name = column.header if key == "variable" else key if column.header in roles else _key(column.header)
        if name in seen:
            if key != "phone_number":  # two phone columns: named below, with those of other headers
                problems.append(
                    column.ref() | {"row": header_row, "error": _twice(key, seen[name], column, roles)}
                )
            continue
        seen[name] = column
        if NUL in column.header:
            problems.append(
                {
                    "row": header_row,
                    "column": column.letter,
                    "header": without_nul(column.header),
                    "error": NUL_MESSAGE,
                }
            )
        elif key == "override":
            problems.append(
                column.ref()
                | {
                    "row": header_row,
                    "error": (
                        f"{column.header!r} is an ElevenLabs override column (language, first_message, "
                        "system_prompt, voice_id); campaigns do not override the agent: rename the "
                        "column to pass it as a dynamic variable"
                    ),
                }
            )
        elif key in FIELD_HEADERS:
            fields[key] = column
        elif key == "variable":
            variables.append(column)
    if not phones:
        problems.append(
            {
                "row": header_row,
                "error": "No phone number column: name one phone_number (or phone, number, to_number, mobile)",
                "headers": [c.header for c in columns],
            }
        )
    elif len(phones) > 1:
        problems.append(
            {
                "row": header_row,
                "error": "More than one phone number column: "
                + ", ".join(_how(c, roles) for c in phones)
                + "; keep one (map the others to variable or ignore, or rename them)",
            }
        )
    if problems:
        raise SheetError("Invalid spreadsheet header", problems)
    return Layout(
        phone=phones[0],
        name=fields.get("name"),
        email=fields.get("email"),
        recipient_id=fields.get("id"),
        variables=tuple(variables),
        unnamed=tuple(c.index for c in columns if not c.header),
        ignored=ignored,
    )


# ---- cells ----------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """A cell as text: numbers as a spreadsheet shows them without formatting, dates as ISO 8601."""
    if isinstance(value, str):  # every CSV cell: first, as 100,000-row files ask for each cell
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value).strip()


def _variable(value: object) -> Value | None:
    """A cell as a dynamic variable value (None when empty): text trimmed, numbers and booleans
    kept as they are (XLSX), dates as ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    text = _text(value)
    return text or None


def _phone(value: object, column: Column) -> str | dict[str, Any]:
    """The phone cell's text, or the problem with it."""
    if isinstance(value, str):
        text = value.strip()
        return (
            text
            if (why := spreadsheet_damage(text)) is None
            else column.ref() | {"value": text, "error": why}
        )
    if isinstance(value, bool | datetime | date | time | timedelta):
        return column.ref() | {"value": _text(value), "error": "Not a phone number"}
    if isinstance(value, float) and not value.is_integer():
        return column.ref() | {"value": repr(value), "error": "Not a phone number"}
    text = _text(value)
    if (why := spreadsheet_damage(text)) is not None:
        return column.ref() | {"value": text, "error": why}
    return text


def spreadsheet_damage(text: str) -> str | None:
    """Why `text` (a phone number as given) cannot be read when a spreadsheet reformatted it, else
    None: scientific notation ("1.41555501E+10": its last digits are gone) or a decimal
    ("14155550101.0", "14155550101,00": a number column exported with decimals)."""
    if "." not in text and "," not in text and "e" not in text and "E" not in text:
        return None  # neither form (every well-formed number: asked for each of 100,000 rows)
    compact = text.replace(" ", "")
    if _SCIENTIFIC.match(compact):
        return (
            f"The number was turned into scientific notation ({text}) by a spreadsheet and its "
            "last digits are lost: format the column as text, enter the numbers again and export"
        )
    if _DECIMAL.match(compact):
        return (
            f"The number was written as a decimal ({text}) by a spreadsheet: format the column as "
            "text (or as a number without decimals) and export again"
        )
    return None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def entry(row: int, cells: tuple[object, ...] | list[Any], shape: Layout) -> Entry | None:
    """The recipient of one data row (`row`: its spreadsheet row number), None for a blank row."""
    may_hold_nul = True
    if isinstance(cells, list):  # a CSV record: text only, checked in one pass
        joined = "".join(cells)
        if not joined.strip():
            return None
        may_hold_nul = NUL in joined
    elif all(_blank(c) for c in cells):
        return None
    width = len(cells)

    def cell(column: Column | None) -> object:
        return cells[column.index] if column is not None and column.index < width else None

    item = Entry(
        ref={"row": row}, phone=None, phone_ref=shape.phone_ref, refs=shape.refs, may_hold_nul=may_hold_nul
    )
    phone = _phone(cell(shape.phone), shape.phone)
    if isinstance(phone, dict):
        item.problems.append({"row": row} | phone)
    else:
        item.phone = phone
    if shape.name is not None:
        item.name = _text(cell(shape.name)) or None
    if shape.email is not None:
        item.email = _text(cell(shape.email)) or None
    if shape.recipient_id is not None:
        item.recipient_id = _text(cell(shape.recipient_id)) or None
    variables = item.variables
    for column in shape.variables:
        if column.index < width:
            value = cells[column.index]
            if isinstance(value, str):  # CSV: every cell
                if text := value.strip():
                    variables[column.header] = text
            elif (typed := _variable(value)) is not None:
                variables[column.header] = typed
    if width > shape.last or shape.unnamed:
        stray = [
            i
            for i in (*shape.unnamed, *range(shape.last + 1, width))
            if i < width and i not in shape.ignored and not _blank(cells[i])
        ]
        for index in sorted(set(stray)):
            item.problems.append(
                {
                    "row": row,
                    "column": column_letter(index),
                    "value": _text(cells[index]),
                    "error": "A value in a column without a header",
                }
            )
    return item


# ---- files ----------------------------------------------------------------------------------------


class Sheet:
    """A recipient spreadsheet being read: its `layout` (from the header row) and its `entries`,
    one per non-blank data row, read lazily. `blank_rows` counts the blank rows skipped so far.
    Close it (or use `with`) to release an XLSX workbook."""

    def __init__(
        self, shape: Layout, rows: Iterator[tuple[int, Any]], closer: Any = None, *, blank_rows: int = 0
    ) -> None:
        self.layout = shape
        self._rows = rows
        self._closer = closer
        self.blank_rows = blank_rows  # those before the header, then those read so far

    def entries(self) -> Iterator[Entry]:
        for number, cells in self._rows:
            if number > MAX_SHEET_ROWS:
                raise SheetError(
                    "Too many rows", [{"row": number, "error": f"A sheet has at most {MAX_SHEET_ROWS} rows"}]
                )
            item = entry(number, cells, self.layout)
            if item is None:
                self.blank_rows += 1
            else:
                yield item

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> Sheet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class Raw:
    """A file opened: its `headers` (the first non-blank row, row `header_row`; the blank rows
    before it are skipped), its data rows by number, and what closes it."""

    headers: list[str]
    header_row: int
    rows: Iterator[tuple[int, Any]]
    closer: Any


def open_sheet(file: IO[bytes], file_name: str, roles: Mapping[str, str] | None = None) -> Sheet:
    """Open an uploaded recipient file, judged by its content (XLSX is a zip; anything else must
    be delimited text), its columns read as `layout(headers, roles)` says. Raises `SheetError`
    (422, or 415 for a legacy binary .xls)."""
    raw = _open_raw(file, file_name)
    try:
        shape = layout(raw.headers, roles, header_row=raw.header_row)
    except SheetError:
        if raw.closer is not None:
            raw.closer()
        raise
    return Sheet(shape, raw.rows, closer=raw.closer, blank_rows=raw.header_row - 1)


def head(file: IO[bytes], file_name: str, rows: int) -> tuple[list[str], list[list[str]]]:
    """(the header row, up to `rows` non-blank data rows) as text, whatever the columns mean: what a
    person sees first when mapping the columns. Raises `SheetError` for an unreadable file."""
    raw = _open_raw(file, file_name)
    headers, closer = raw.headers, raw.closer
    try:
        first: list[list[str]] = []
        for _, cells in raw.rows:
            texts = [_text(c) for c in cells]
            if any(texts):
                first.append(texts)
            if len(first) >= rows:
                break
    finally:
        if closer is not None:
            closer()
        file.seek(0)
    return headers, first


def _open_raw(file: IO[bytes], file_name: str) -> Raw:
    head = file.read(8)
    file.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(file)
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: Excel 97-2003 .xls
        raise SheetError(
            "Unsupported file type",
            [
                {
                    "error": f"{file_name or 'The file'} is a legacy Excel (.xls) workbook: save it as .xlsx or CSV"
                }
            ],
            status_code=415,
        )
    return _open_csv(file)


def _open_csv(file: IO[bytes]) -> Raw:
    head = file.read(4)
    file.seek(0)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    # A byte the encoding cannot decode is kept as a lone surrogate (no valid text holds one) and
    # reported with the row it is in: a strict decoder fails on the whole block it decodes ahead
    # (thousands of rows), naming the row where that block starts.
    text = io.TextIOWrapper(file, encoding=encoding, errors="surrogateescape", newline="")
    # Blank lines before the header (empty, or only delimiters as `;;;`) are skipped, counted: the
    # header is the first line with text, and rows keep the numbers the spreadsheet shows.
    skipped = 0
    for line in text:
        if skipped == 0:
            line = line.lstrip("\ufeff")
        if not _blank_line(line):
            break
        skipped += 1
    else:
        blank = f" ({skipped} blank rows)" if skipped else ""
        raise SheetError("Empty file", [{"error": f"The file has no header row and no data{blank}"}])
    header_row = skipped + 1
    # The first lines decide the delimiter: the one that splits the header into most columns.
    sample = [line, *itertools.islice(text, 19)]
    first = "".join(sample)
    widths = {d: _header_width(first, d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: widths[d])  # ties: the earlier (comma)
    lines = _Lines(itertools.chain(sample, text))
    records = csv.reader(lines, delimiter=delimiter, strict=False)
    try:
        headers = next(records)
    except csv.Error as exc:
        raise SheetError("Unreadable CSV", [{"row": header_row, "error": _csv_error(exc)}]) from None
    if lines.undecodable:
        raise _not_utf8(header_row, headers)
    _check_quotes(headers, lines, delimiter, header_row, header_row)

    def rows() -> Iterator[tuple[int, Any]]:
        number = header_row
        while True:
            line = records.line_num + header_row
            lines.taken.clear()
            try:
                record = next(records)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SheetError("Unreadable CSV", [{"row": number + 1, "error": _csv_error(exc)}]) from None
            number += 1
            if lines.undecodable:
                raise _not_utf8(number, record)
            _check_quotes(record, lines, delimiter, number, line)
            yield number, record

    return Raw(headers, header_row, rows(), text.detach)


def _blank_line(line: str) -> bool:
    """Whether a physical line of a CSV file is a blank row: nothing but white space, delimiters
    and empty quoted cells (an odd number of quotes opens a cell that goes on: not blank)."""
    rest = line.strip(" \t\r\n,;")
    if not rest:
        return True
    return rest.count('"') % 2 == 0 and not rest.replace('"', "").strip(" \t,;")


def _csv_error(exc: csv.Error) -> str:
    """Python's csv message, in the user's terms where it is about the file's shape."""
    if "field larger than field limit" in str(exc):
        return f"A cell is longer than {csv.field_size_limit():,} characters"
    return str(exc)


def _header_width(sample: str, delimiter: str) -> int:
    """How many cells `delimiter` splits the header into (-1 when csv cannot read it so: the
    reading proper then says why, on row 1). `newline=""`: lines may end in a lone CR (classic
    Mac Excel's "CSV (Macintosh)"), as the file itself is read."""
    try:
        return len(next(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), []))
    except csv.Error:
        return -1


class _Lines:
    """The lines a csv reader takes, those of its current record kept (`taken`) so that a record
    can be read again."""

    def __init__(self, source: Iterator[str]) -> None:
        self._source = source
        self.taken: list[str] = []
        self.undecodable = False  # a line held a byte its encoding could not decode

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._source)
        self.taken.append(line)
        if not line.isascii() and _has_surrogate(line):
            self.undecodable = True
        return line


def _has_surrogate(text: str) -> bool:
    """True when `text` holds a lone surrogate: an undecodable byte under "surrogateescape"."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_quotes(record: list[str], lines: _Lines, delimiter: str, row: int, line: int) -> None:
    """Raise `SheetError` when `record` (row `row`, starting on line `line` of the file) ends
    inside a quoted cell that is never closed. The lenient reader (stray quotes as in `O"Brien`
    are kept) silently reads such a cell to the end of the file, every row after it inside it:
    a header-only sheet, or one odd number. Only a record with a line break in a cell can be one,
    so only those are read again, strictly."""
    if not any("\n" in cell or "\r" in cell for cell in record):
        return
    try:
        for _ in csv.reader(lines.taken, delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" not in str(exc):
            return  # a stray quote the lenient reading accepts
        raise SheetError(
            "Unreadable CSV",
            [
                {
                    "row": row,
                    "line": line,
                    "error": f"Malformed CSV at line {line}: a quoted cell is never closed (a missing"
                    ' closing "), so every line after it would be read into that cell',
                }
            ],
        ) from None


def _not_utf8(row: int, record: list[str]) -> SheetError:
    """The file's first undecodable byte is in `record`, row `row` (its column named)."""
    where = next((i for i, cell in enumerate(record) if _has_surrogate(cell)), None)
    return SheetError(
        "The file is not UTF-8 text",
        [
            {"row": row}
            | ({"column": column_letter(where)} if where is not None else {})
            | {"error": "Save the sheet as CSV UTF-8 (or as .xlsx) and upload it again"}
        ],
    )


def _open_xlsx(file: IO[bytes]) -> Raw:
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise SheetError("Unreadable XLSX", [{"error": f"Not a readable .xlsx workbook ({exc})"}]) from None
    if inflated > max(size, 1024 * 1024) * XLSX_INFLATION:
        raise SheetError("Unreadable XLSX", [{"error": "The workbook inflates far beyond its size"}])
    file.seek(0)
    # Imported here: openpyxl holds ~18 MiB a gateway that never sees a workbook need not keep.
    from openpyxl import load_workbook

    try:
        # read_only: rows stream from the sheet's XML; data_only: a formula's last computed value.
        workbook = load_workbook(file, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # exporters often write a wrong <dimension>: read every row
        rows = sheet.iter_rows(values_only=True)
        # Empty rows before the header are skipped (openpyxl yields a row for each, even those
        # the XML leaves out, so the count is the sheet's row number).
        header_row = 1
        headers = next(rows, None)
        while headers is not None and not any(_text(h) for h in headers):
            if header_row >= MAX_SHEET_ROWS:
                headers = None
                break
            header_row += 1
            headers = next(rows, None)
    except SheetError:
        raise
    except Exception as exc:  # openpyxl raises many kinds on damaged workbooks
        raise SheetError(
            "Unreadable XLSX", [{"error": f"Not a readable .xlsx workbook ({type(exc).__name__})"}]
        ) from None
    if headers is None:
        workbook.close()
        raise SheetError(
            "Empty file",
            [{"error": "The first sheet has no header row: it is empty, or holds only blank rows"}],
        )
    return Raw([_text(h) for h in headers], header_row, _xlsx_rows(rows, header_row), workbook.close)


def _xlsx_rows(rows: Iterator[tuple[Any, ...]], header_row: int) -> Iterator[tuple[int, Any]]:
    """The data rows by number (the header is row `header_row`); damage further down the sheet's
    XML (a cut file, a character XML forbids) surfaces only when its row is read, as `SheetError`
    there."""
    number = header_row
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # as when opening: openpyxl raises many kinds on damaged XML
            raise SheetError(
                "Unreadable XLSX",
                [
                    {
                        "row": number + 1,
                        "error": f"The workbook is damaged after row {number} ({type(exc).__name__})",
                    }
                ],
            ) from None
        number += 1
        yield number, row
