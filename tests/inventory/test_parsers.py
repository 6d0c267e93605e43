"""The file readers alone: formats, pairs and separators, line numbers, unreadable files."""
from __future__ import annotations

import io

import pytest

from platform_core.inventory import parsers
from platform_core.inventory.importing import open_source
from platform_core.inventory.parsers import ImportFileError


def parsed(content: bytes | str, fmt: str = "txt", **options) -> list[tuple]:
    data = content.encode() if isinstance(content, str) else content
    return list(open_source(stream=io.BytesIO(data), fmt=fmt, **options).parsed)


def keys(rows) -> list[str]:
    return [secret for _, secret, _ in rows if secret is not None]


def errors(rows) -> list[tuple[int, str]]:
    return [(line, error) for line, _, error in rows if error is not None]


def xlsx_bytes(rows) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_txt_one_key_per_line_strips_whitespace_and_skips_blank_lines():
    rows = parsed("  AAAA-1111  \n\n\t\nBBBB-2222\r\nCCCC 3333\n")
    assert keys(rows) == ["AAAA-1111", "BBBB-2222", "CCCC 3333"]
    assert [line for line, _, _ in rows] == [1, 4, 5]  # physical line numbers


@pytest.mark.parametrize("separator", [" ", ",", "----", "|", "\t", ";"])
def test_txt_pairs_with_each_separator_are_stored_as_card_space_password(separator):
    rows = parsed(f"CARD1{separator}PASS1\nCARD2 {separator} PASS2\n", separator=separator)
    assert keys(rows) == ["CARD1 PASS1", "CARD2 PASS2"]


def test_pairs_split_at_the_first_separator_and_missing_password_is_reported():
    rows = parsed("C1----P1----tail\nLONELY\nC3----\n----P4\n", separator="----")
    assert keys(rows) == ["C1 P1----tail"]
    assert errors(rows) == [(2, "missing password (expected card----password)"),
                            (3, "missing password (expected card----password)"),
                            (4, "the card is empty")]


def test_space_separator_accepts_any_run_of_spaces():
    assert keys(parsed("CARD     PASS\n", separator=" ")) == ["CARD PASS"]


def test_invalid_lines_are_reported_by_line_number_and_skipped():
    rows = parsed("GOOD-1\n" + "X" * 501 + "\nBAD\x07BELL\nGOOD-2\n" + "Y" * 500 + "\n")
    assert keys(rows) == ["GOOD-1", "GOOD-2", "Y" * 500]
    assert errors(rows) == [(2, "longer than 500 characters"), (3, "contains a tab or another control character")]


def test_gb18030_utf8_bom_and_utf16_text_are_read():
    assert keys(parsed("卡密-一\n卡密-二\n".encode("gb18030"))) == ["卡密-一", "卡密-二"]
    assert keys(parsed("\ufeffKEY-1\nKEY-2\n".encode("utf-8"))) == ["KEY-1", "KEY-2"]
    assert keys(parsed("KEY-1\r\nKEY-2\r\n".encode("utf-16"))) == ["KEY-1", "KEY-2"]


def test_scan_counts_lines_and_rewinds():
    stream = io.BytesIO(b"a\nb\nc")
    scan = parsers.scan_text(stream)
    assert (scan.encoding, scan.lines, stream.tell()) == ("utf-8-sig", 3, 0)


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 4,                     # binary
    b"KEY-1\nKEY-2\x00\x00\x01\nKEY-3\n",      # NUL bytes in otherwise plain text
    b"\x80\x81\xff\xfe\xfd" * 10,              # neither UTF-8 nor GB18030
    b"PK\x03\x04" + b"\x00" * 40,              # a ZIP archive uploaded as text
])
def test_unreadable_text_raises_before_any_line_is_read(content):
    with pytest.raises(ImportFileError):
        parsed(content)
    with pytest.raises(ImportFileError):
        parsed(content, fmt="csv")


def test_csv_first_column_card_optional_second_password_and_header_skipped():
    rows = parsed('card,password\nC1,P1\n"C,2",\n  ,  \nC3,P3,ignored\n', fmt="csv")
    assert keys(rows) == ["C1 P1", "C,2", "C3 P3"]


def test_csv_header_only_skipped_when_it_is_header_text():
    assert keys(parsed("KEY-1\nKEY-2\n", fmt="csv")) == ["KEY-1", "KEY-2"]
    assert keys(parsed("卡密\nKEY-1\n", fmt="csv")) == ["KEY-1"]


def test_csv_pairs_required_reports_rows_without_password():
    rows = parsed("C1,P1\nC2\nC3,\n", fmt="csv", pairs=True)
    assert keys(rows) == ["C1 P1"]
    assert [line for line, _ in errors(rows)] == [2, 3]


def test_csv_with_a_nul_byte_is_unreadable():
    with pytest.raises(ImportFileError, match="binary data"):
        parsed(b"C1,P1\nC2\x00,P2\n", fmt="csv")


def test_xlsx_first_sheet_numbers_and_pairs():
    content = xlsx_bytes([["Card", "Password"], ["C1", "P1"], [123456789012, None], [None, None], ["C4", 42],
                          ["X" * 600, None]])
    rows = parsed(content, fmt="xlsx")
    assert keys(rows) == ["C1 P1", "123456789012", "C4 42"]
    assert errors(rows) == [(6, "longer than 500 characters")]
    assert open_source(stream=io.BytesIO(content), fmt="xlsx").total_lines == 6


def test_xlsx_pairs_required():
    rows = parsed(xlsx_bytes([["C1", "P1"], ["C2"]]), fmt="xlsx", pairs=True)
    assert keys(rows) == ["C1 P1"] and [line for line, _ in errors(rows)] == [2]


@pytest.mark.parametrize("content, message", [
    (b"KEY-1\nKEY-2\n", "not an XLSX workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "legacy .xls"),
    (b"PK\x03\x04 truncated zip", "not an XLSX workbook"),
])
def test_a_file_that_is_not_xlsx_is_refused(content, message):
    with pytest.raises(ImportFileError, match=message):
        parsed(content, fmt="xlsx")


def test_a_zip_that_is_not_a_workbook_is_refused():
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    with pytest.raises(ImportFileError, match="cannot be read"):
        parsed(out.getvalue(), fmt="xlsx")


def test_guess_format_and_separator_names():
    assert parsers.guess_format("KEYS.TXT") == "txt"
    assert parsers.guess_format("keys.csv") == "csv"
    assert parsers.guess_format("keys.xlsx") == "xlsx"
    assert parsers.guess_format("upload", b"PK\x03\x04") == "xlsx"
    assert parsers.guess_format("upload", b"KEY") == "txt"
    assert parsers.parse_separator("tab") == "\t"
    assert parsers.parse_separator("\\t") == "\t"
    assert parsers.parse_separator("----") == "----"
    assert parsers.parse_separator("") is None


def test_lines_from_the_api_use_the_same_rules():
    rows = list(open_source(lines=["K1 P1", "", "K2"], separator=" ").parsed)
    assert keys(rows) == ["K1 P1"] and errors(rows) == [(3, "missing password (expected card password)")]
