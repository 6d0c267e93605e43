"""Streaming readers for card-key files: paste / TXT, CSV and XLSX.

Every reader yields ``(line_number, secret, error)`` one line at a time — exactly one
of ``secret`` / ``error`` is set — and never holds the whole file in memory.
Blank lines are skipped silently; an invalid line yields an error with its number.

Card + password pairs are stored as one secret, ``"card password"`` (joined by a
single space) whatever separator the file used: the buyer reads them the same way,
and the same pair imported from a TXT with ``----`` and from a CSV gets the same
fingerprint, so it is recognised as a duplicate.

A file that cannot be read as a whole (binary data, an encoding that is neither
UTF-8 / UTF-16 with BOM nor GB18030, an "XLSX" that is not a workbook) raises
:class:`ImportFileError`. Text files are checked completely by :func:`scan_text`
*before* anything is imported, so such a file imports nothing.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_KEY_LENGTH = 500
FORMATS = ("txt", "csv", "xlsx")
# named separators for forms and the command line; anything else is used literally
SEPARATORS = {"space": " ", "comma": ",", "dashes": "----", "pipe": "|", "tab": "\t", "semicolon": ";"}
# first cell of a CSV / XLSX header row (compared lower-case, without spaces, "_" and "-")
HEADER_WORDS = {"card", "cards", "key", "keys", "cardkey", "cardkeys", "code", "codes", "cardnumber", "cardno",
                "serial", "secret", "cdk", "cdkey", "account", "卡号", "卡密", "卡", "密钥", "激活码", "兑换码",
                "账号", "序列号"}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCAN_BLOCK = 1 << 20
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls and other OLE documents
_ZIP_MAGIC = b"PK\x03\x04"

Parsed = tuple[int, "str | None", "str | None"]


class ImportFileError(Exception):
    """The file as a whole cannot be read; nothing of it is imported."""


@dataclass(frozen=True)
class TextScan:
    encoding: str
    lines: int


def parse_separator(value: str | None) -> str | None:
    """``"tab"`` / ``"\\t"`` -> tab, ``"space"`` -> " ", ... ; empty -> None (one key per line)."""
    if value is None or value == "":
        return None
    if value in SEPARATORS:
        return SEPARATORS[value]
    return value.replace("\\t", "\t")


def guess_format(filename: str, head: bytes = b"") -> str:
    """txt / csv / xlsx from the extension, else from the first bytes."""
    name = (filename or "").lower()
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    return "txt"


# --- validation ----------------------------------------------------------------------

def _check(line: int, secret: str) -> Parsed:
    if len(secret) > MAX_KEY_LENGTH:
        return line, None, f"longer than {MAX_KEY_LENGTH} characters"
    if _CONTROL.search(secret):
        return line, None, "contains a tab or another control character"
    return line, secret, None


def _pair(line: int, card: str, password: str, *, required: bool, separator_label: str) -> Parsed:
    if not card:
        return line, None, "the card is empty"
    if not password:
        if required:
            return line, None, f"missing password (expected card{separator_label}password)"
        return _check(line, card)
    return _check(line, f"{card} {password}")


def _label(separator: str) -> str:
    return {" ": " ", "\t": "<tab>"}.get(separator, separator)


# --- text (paste, TXT) ---------------------------------------------------------------

def scan_text(stream) -> TextScan:
    """Read a binary stream once, completely: pick the encoding and count lines.

    Raises ImportFileError for binary data or text in no supported encoding. Leaves
    the stream at its start again."""
    stream.seek(0)
    head = stream.read(8)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_OLE_MAGIC):
        raise ImportFileError("This is a spreadsheet or archive, not a text file; choose the XLSX format "
                              "(legacy .xls files must be saved as .xlsx or CSV first).")
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8-sig", "gb18030"]
    for encoding in candidates:
        stream.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        lines = 0
        ended_with_newline = True
        try:
            while block := stream.read(_SCAN_BLOCK):
                text = decoder.decode(block)
                if "\x00" in text:
                    raise ImportFileError("The file contains binary data (NUL bytes); it is not a text file.")
                if text:
                    lines += text.count("\n")
                    ended_with_newline = text.endswith("\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        stream.seek(0)
        return TextScan(encoding=encoding, lines=lines + (0 if ended_with_newline else 1))
    raise ImportFileError("The file is not readable text (expected UTF-8 or GB18030).")


def read_text_lines(lines: Iterable[str], *, separator: str | None = None) -> Iterator[Parsed]:
    """One key per line, or ``card<separator>password`` pairs when a separator is given."""
    line_no = 0
    if separator is None:
        for raw in lines:
            line_no += 1
            secret = raw.strip()
            if secret:
                yield _check(line_no, secret)
        return
    label = _label(separator)
    split_on = None if separator == " " else separator  # " ": any run of spaces
    for raw in lines:
        line_no += 1
        text = raw.strip()
        if not text:
            continue
        parts = text.split(split_on, 1)
        card = parts[0].strip()
        password = parts[1].strip() if len(parts) > 1 else ""
        yield _pair(line_no, card, password, required=True, separator_label=label)


def read_text(stream, *, separator: str | None = None, encoding: str) -> Iterator[Parsed]:
    """A binary stream already checked by :func:`scan_text`."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline=None)
    try:
        yield from read_text_lines(text, separator=separator)
    finally:
        _detach(text)


def _detach(text: io.TextIOWrapper) -> None:
    """Let go of the binary stream without closing it: the caller owns it."""
    try:
        text.detach()
    except ValueError:  # the caller closed it already
        pass


# --- CSV -----------------------------------------------------------------------------

def _is_header(cell) -> bool:
    word = re.sub(r"[\s_\-]", "", str(cell or "")).lower()
    return word in HEADER_WORDS


def _read_rows(rows: Iterator[tuple[int, list[str]]], *, pairs: bool) -> Iterator[Parsed]:
    """Column A = card, optional column B = password; further columns are ignored."""
    first = True
    for line, row in rows:
        cells = [cell.strip() for cell in row[:2]]
        if not any(cells):
            continue
        if first:
            first = False
            if _is_header(cells[0]):
                continue
        card = cells[0]
        password = cells[1] if len(cells) > 1 else ""
        yield _pair(line, card, password, required=pairs, separator_label=",")


def read_csv(stream, *, encoding: str, pairs: bool = False, delimiter: str = ",") -> Iterator[Parsed]:
    """A binary stream already checked by :func:`scan_text`."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter)

    def rows():
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise ImportFileError(f"The CSV file is damaged near line {reader.line_num}: {exc}") from exc

    try:
        yield from _read_rows(rows(), pairs=pairs)
    finally:
        _detach(text)


# --- XLSX ----------------------------------------------------------------------------

def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # numeric card numbers: 1234.0 -> "1234"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def open_workbook(stream):
    """The first worksheet of an XLSX workbook (read-only, streamed)."""
    stream.seek(0)
    head = stream.read(8)
    stream.seek(0)
    if head.startswith(_OLE_MAGIC):
        raise ImportFileError("This is a legacy .xls workbook; save it as .xlsx or CSV first.")
    if not head.startswith(_ZIP_MAGIC) or not zipfile.is_zipfile(stream):
        raise ImportFileError("The file is not an XLSX workbook.")
    stream.seek(0)
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
    except (InvalidFileException, zipfile.BadZipFile, KeyError, IndexError, OSError, ValueError) as exc:
        raise ImportFileError(f"The XLSX workbook cannot be read: {exc}") from exc
    return workbook, sheet


def read_xlsx(stream, *, pairs: bool = False) -> Iterator[Parsed]:
    workbook, sheet = open_workbook(stream)

    def rows():
        try:
            for number, values in enumerate(sheet.iter_rows(max_col=2, values_only=True), start=1):
                yield number, [_cell_text(value) for value in values]
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a damaged sheet
            raise ImportFileError(f"The XLSX workbook is damaged: {exc}") from exc

    try:
        yield from _read_rows(rows(), pairs=pairs)
    finally:
        workbook.close()


def xlsx_row_count(stream) -> int:
    """Rows declared by the sheet (0 when the workbook does not say)."""
    workbook, sheet = open_workbook(stream)
    try:
        return sheet.max_row or 0
    finally:
        workbook.close()
        stream.seek(0)
