"""Column mapping of recipient spreadsheets (gateway.spreadsheets `roles`) and the raw first rows
(`head`) the console shows before anything is checked."""

from __future__ import annotations

import io

import pytest

from gateway.spreadsheets import SheetError, detected_role, head, layout, open_sheet


def test_detected_roles_follow_the_headers() -> None:
    assert [detected_role(h) for h in ("Phone Number", "mobile", "Name", "id", "Plan", "voice_id")] == [
        "phone_number",
        "phone_number",
        "name",
        "id",
        "variable",
        "override",
    ]


def test_a_mapping_names_the_phone_column_and_turns_a_known_header_into_a_variable() -> None:
    assert layout(["Tel", "Name", "Number"]).phone.header == "Number"  # an order number, here
    with pytest.raises(SheetError, match="Invalid spreadsheet header"):
        layout(["Tel", "Name"])
    shape = layout(["Tel", "Name", "Number"], {"Tel": "phone_number", "Number": "variable"})
    assert shape.phone.header == "Tel" and shape.name is not None and shape.name.header == "Name"
    assert [c.header for c in shape.variables] == ["Number"]


def test_an_ignored_column_is_never_read_even_past_the_last_named_one() -> None:
    sheet = open_sheet(
        io.BytesIO(b"phone,Plan,Notes\n+14155550101,gold,call after 5\n"),
        "x.csv",
        {"Notes": "ignore"},
    )
    [entry] = list(sheet.entries())
    assert entry.phone == "+14155550101" and entry.variables == {"Plan": "gold"} and not entry.problems


def test_a_mapping_of_unknown_headers_or_roles_is_refused_naming_them() -> None:
    with pytest.raises(SheetError) as refused:
        layout(["phone", "Plan"], {"Plann": "variable", "Plan": "dynamic"})
    assert refused.value.error == "Invalid column mapping"
    assert [p["header"] for p in refused.value.problems] == ["Plann", "Plan"]


def test_head_reads_the_first_rows_whatever_the_headers_mean() -> None:
    file = io.BytesIO(b"\xef\xbb\xbfTel;Name\n+14155550101;Ana\n\n+14155550102;Ben\n+14155550103;Cy\n")
    headers, rows = head(file, "x.csv", 2)
    assert headers == ["Tel", "Name"]
    assert rows == [["+14155550101", "Ana"], ["+14155550102", "Ben"]]
    assert file.tell() == 0  # ready to be read again, whole


def test_a_mapped_phone_column_beside_a_detected_one_is_two_phone_columns() -> None:
    with pytest.raises(SheetError) as refused:
        layout(["Tel", "mobile"], {"Tel": "phone_number"})
    assert "More than one phone number column" in refused.value.problems[0]["error"]
