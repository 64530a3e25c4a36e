"""Read input documents as a stream: JSON, NDJSON or CSV, from a file, a folder or standard input.

Memory stays flat in the number of orders for NDJSON and CSV (one line at a time); a JSON file is
one document and is read whole.  A folder is every file directly in it (not its sub-folders, not
hidden files), one after the other in name order, as one stream; each file's format comes from its
name unless one is given.

Bad input never stops the stream and never takes good records with it: what cannot be read comes
out as an `InputError` item naming the file and line (and column where known), so the caller
rejects it with its reason and goes on.  Files are read as bytes and decoded line by line, so one
byte that is not UTF-8 costs only its own line (NDJSON), row (CSV) or document (JSON).  Lines end
at \n, \r\n or a lone \r, as when Python reads text.

CSV rows are cut by Python's `csv` module (strict mode: a quoted cell must be followed by a comma
or the end of its line) fed one line at a time, so a quoted cell may hold line breaks.  A quoted
cell that does not close where it should would swallow the rows after it; the rule that tells it
from a legitimate multi-line cell is a heuristic: a record that spans several lines is taken as an
unterminated quote when its quoted cell runs to the end of the file, grows past the `csv` field
limit (128 KiB), is followed by text other than a comma after its closing quote, or leaves the
record with another number of cells than the header names.  Then only the line where the quote
opens is rejected ("unterminated quote"), and reading goes on with the next line as a new row.  A
multi-line cell in a row with missing cells at its end is therefore rejected too (write every
column, as spreadsheet exports do); and an open quote that a later quoted cell beginning with a
line break or a comma happens to close, into a row of the right width, is valid CSV and read as
such (no reader can tell it from a cell meant to hold that text).  A row is named by the line it
starts on.  A row holding a NUL byte or a byte that is not UTF-8 is rejected; a header that
cannot be read rejects every row after it (its cells have no names).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

INPUT_FORMATS = ("json", "ndjson", "csv")
SUFFIX_FORMATS = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}


@dataclass(frozen=True)
class Document:
    """One input document and where it came from (file and line, for messages)."""

    data: Any
    where: str


@dataclass(frozen=True)
class InputError:
    """A piece of input that could not be read; it becomes a rejected record."""

    where: str
    reason: str


class InputFormatError(ValueError):
    """The input as a whole cannot be read (unknown format, missing file)."""


MAX_DEPTH = 100
"""How deeply a document's objects and lists may nest (real shop payloads nest under 10): deeper
documents are rejected when read, so nothing later (expressions, JSON text, the state) recurses
without bound."""


def parse_json(text: str | bytes, where: str) -> Document | InputError:
    """One JSON document (numbers with decimals as Decimal), or the reason it cannot be used:
    bytes that are not UTF-8 (located at the first bad byte), text that is not JSON, nesting
    deeper than `MAX_DEPTH`, a number of more digits than Python converts (also when written with
    an exponent: 1e999999999), a lone UTF-16 surrogate in a text (it cannot be stored or sent).
    Never raises for what a sender wrote."""
    body = None  # the bytes read, when given bytes: a cheap proof that the value walk is not needed
    if isinstance(text, bytes):
        body = text.removeprefix(BOM)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            line = body.count(b"\n", 0, error.start) + 1
            line_start = body.rfind(b"\n", 0, error.start) + 1
            column = len(body[line_start : error.start].decode("utf-8")) + 1
            return InputError(
                _at(where, line, column),
                _not_utf8(body[error.start], utf16=body.startswith(_UTF16_BOMS)),
            )
    try:
        data = json.loads(text, parse_float=_decimal)
    except json.JSONDecodeError as error:
        return InputError(_at(where, error.lineno, error.colno), f"not valid JSON: {error.msg}")
    except RecursionError:
        return InputError(where, f"the JSON nests deeper than {MAX_DEPTH} levels")
    except ValueError:  # a number of more digits than int() converts (or than _decimal takes)
        return InputError(
            where,
            f"a number has more than {_max_digits()} digits; no shop amount or id is that long",
        )
    if body is None or not _surely_usable(body):
        problem = _unusable(data)
        if problem is not None:
            return InputError(where, problem)
    return Document(data, where)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _surely_usable(body: bytes) -> bool:
    """Whether two scans of the raw bytes (in C) prove that `_unusable` would find nothing - for
    a Shopify order its walk of every value costs four times the parse itself:

    - nesting: a value nested n deep sits inside n objects or lists, each opened by a '{' or '[';
      with no more of those bytes in the body (strings included) than MAX_DEPTH, none is deeper;
    - surrogates: UTF-8 cannot encode one (decoding refuses it), so a text can only hold one
      written as an escape, \\uD800 to \\uDFFF."""
    return (
        body.count(b"{") + body.count(b"[") <= MAX_DEPTH and _SURROGATE_ESCAPE.search(body) is None
    )


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some Windows tools write first


def _decimal(text: str) -> Decimal:
    """A JSON number with a fraction or exponent; refused (ValueError) when written out it has more
    digits than an integer may, as 1e999999999 does (a billion), like int() refuses."""
    number = Decimal(text)
    if abs(number.adjusted()) > _max_digits():
        raise ValueError(text)
    return number


def _max_digits() -> int:
    return sys.get_int_max_str_digits() or sys.int_info.default_max_str_digits  # 0: no limit


def _at(where: str, line: int, column: int) -> str:
    """`where` with a line and column (a one-line document: its column only)."""
    if line == 1 and ":" in where:  # an NDJSON line: where already names the line
        return f"{where}:{column}"
    return f"{where}:{line}:{column}"


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # how UTF-16 text starts (Excel's "Unicode Text")


def _not_utf8(byte: int, column: int = 0, *, utf16: bool = False) -> str:
    if utf16:
        return (
            "not UTF-8 text: it is UTF-16 (it starts with a UTF-16 byte order mark); save "
            "or send it as UTF-8"
        )
    at = f" at column {column}" if column else ""
    return f"not UTF-8 text: byte 0x{byte:02x}{at} cannot be decoded; save the file as UTF-8"


def _unusable(data: Any) -> str | None:
    """Why a parsed document cannot be used (too deep, a lone surrogate), or None."""
    todo: list[tuple[Any, int, str]] = [(data, 1, "")]
    while todo:
        value, depth, path = todo.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return (
                    f"the text at {path or 'the top'} holds a lone UTF-16 surrogate "
                    f"(invalid Unicode): it cannot be stored or sent"
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            return f"the JSON nests deeper than {MAX_DEPTH} levels (at {_short(path, 80)})"
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return (
                        f"a key at {path or 'the top'} holds a lone UTF-16 surrogate "
                        "(invalid Unicode): it cannot be stored or sent"
                    )
                todo.append(
                    (item, depth + 1, f"{path}.{_short(key, 40)}" if path else _short(key, 40))
                )
        else:
            todo.extend((item, depth + 1, f"{path}[{index}]") for index, item in enumerate(value))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def guess_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if path == "-":
        return "ndjson"  # a stream; one JSON document per line (a single document works too)
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InputFormatError(
            f"cannot tell the format of '{path}' from its name; use --input-format "
            f"({', '.join(INPUT_FORMATS)})"
        )
    return SUFFIX_FORMATS[suffix]


def read_documents(path: str, input_format: str | None = None) -> Iterator[Document | InputError]:
    """Yield the documents of `path` (a file, a folder, or '-' for standard input) one by one."""
    if path == "-":
        stdin = getattr(sys.stdin, "buffer", None)  # the bytes under the text (absent in tests)
        stream = (
            stdin
            if stdin is not None
            else io.BytesIO(sys.stdin.read().encode("utf-8", "surrogateescape"))
        )
        yield from _read_stream(stream, "<stdin>", guess_format(path, input_format))
        return
    file_path = Path(path)
    if file_path.is_dir():
        files = folder_files(file_path, input_format)
    elif file_path.is_file():
        files = [(file_path, guess_format(path, input_format))]
    else:
        raise InputFormatError(f"input file '{path}' does not exist")
    for one, fmt in files:
        with one.open("rb") as stream:
            yield from _read_stream(stream, str(one), fmt)


COUNT_BLOCK = 1 << 20


def expected_records(path: str, input_format: str | None = None) -> int | None:
    """About how many records `path` holds, for the progress bar's estimate of the time left:
    the lines of its NDJSON files and the rows of its CSV files (a CSV cell over several lines
    counts more than once); None when that cannot be known cheaply (JSON files, standard input,
    a path that is not there)."""
    if path == "-":
        return None
    file_path = Path(path)
    try:
        files = (
            folder_files(file_path, input_format)
            if file_path.is_dir()
            else [(file_path, guess_format(path, input_format))]
            if file_path.is_file()
            else []
        )
    except InputFormatError:
        return None
    if not files or any(fmt == "json" for _, fmt in files):
        return None
    total = 0
    for one, fmt in files:
        lines, last = 0, b"\n"
        with one.open("rb") as stream:
            while block := stream.read(COUNT_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"  # a last line without its newline
        total += max(0, lines - 1) if fmt == "csv" else lines  # (the CSV header)
    return total


def folder_files(folder: Path, input_format: str | None = None) -> list[tuple[Path, str]]:
    """The files of an input folder in name order, each with its format.

    Every format is known before the first file is read, so a stray file stops the run at once
    instead of after hours of work.
    """
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not files:
        raise InputFormatError(f"the input folder '{folder}' holds no files")
    return [(p, guess_format(str(p), input_format)) for p in files]


def documents_from_value(value: Any, where: str) -> Iterator[Document]:
    """An in-memory input (an example case's 'input:') as a single document."""
    yield Document(value, where)


def _read_stream(stream: IO[bytes], name: str, fmt: str) -> Iterator[Document | InputError]:
    if fmt == "json":
        yield parse_json(stream.read(), name)
        return
    if fmt == "ndjson":
        yield from _read_ndjson(stream, name)
        return
    if fmt == "csv":
        yield from _read_csv(stream, name)
        return
    raise InputFormatError(f"unknown input format '{fmt}'; use one of {', '.join(INPUT_FORMATS)}")


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(number from 1, bytes with their line ending) of each line, without the byte order mark."""
    number = 0
    for chunk in stream:  # ends at b"\n" only: a lone b"\r" is split off here
        if number == 0:
            chunk = chunk.removeprefix(BOM)
        cr = chunk.find(b"\r")
        if cr == -1 or (cr == len(chunk) - 2 and chunk.endswith(b"\n")):
            number += 1
            yield number, chunk
            continue
        for piece in _AFTER_LONE_CR.split(chunk):
            if piece:  # a file ending in a lone \r has no empty line after it
                number += 1
                yield number, piece


_AFTER_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")
_JSON_SPACE = b" \t\r\n"


def _read_ndjson(stream: IO[bytes], name: str) -> Iterator[Document | InputError]:
    for number, line in _lines(stream):
        if line.strip(_JSON_SPACE):  # without its line ending: errors name a column of the line
            yield parse_json(line.rstrip(b"\r\n"), f"{name}:{number}")


_Line = tuple[int, str, str | None]
"""A decoded CSV line: its number, its text with its line ending (as `csv` wants it), and why it
cannot be used (a byte that is not UTF-8, a NUL) or None."""


def _csv_line(number: int, raw: bytes) -> _Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = len(raw[: error.start].decode("utf-8")) + 1
        return (
            number,
            raw.decode("utf-8", "replace"),
            _not_utf8(raw[error.start], column, utf16=number == 1 and raw.startswith(_UTF16_BOMS)),
        )
    if "\x00" in text:
        return (
            number,
            text,
            (
                f"a NUL byte at column {text.index(chr(0)) + 1} (binary data, not "
                "CSV text); export the file again as UTF-8 text"
            ),
        )
    return number, text, None


class _LineFeed:
    """The lines `csv.reader` reads, remembering which it took for the current record (and the
    first problem among them); lines put back are read again first (after a record that
    swallowed them was rejected)."""

    def __init__(self, lines: Iterator[_Line]):
        self.lines = lines
        self.put_back: list[_Line] = []  # in reverse order: the next line is the last
        self.taken: list[_Line] = []
        self.problem: str | None = None

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = self.put_back.pop() if self.put_back else next(self.lines)
        self.taken.append(line)
        if line[2] is not None and self.problem is None:
            self.problem = f"line {line[0]}, {line[2]}" if len(self.taken) > 1 else line[2]
        return line[1]

    def next_record(self) -> None:
        self.taken, self.problem = [], None

    def read_again(self, lines: list[_Line]) -> None:
        self.put_back.extend(reversed(lines))


def _read_csv(stream: IO[bytes], name: str) -> Iterator[Document | InputError]:
    feed = _LineFeed(_csv_line(number, raw) for number, raw in _lines(stream))
    reader = csv.reader(feed, strict=True)
    header: list[str] | None = None
    header_problem = ""  # why the header could not be read: every row after it is rejected
    while True:
        feed.next_record()
        try:
            cells: list[str] | None = next(reader)
            error = ""
        except StopIteration:
            return
        except csv.Error as csv_error:
            cells, error = None, str(csv_error)
        lines = feed.taken
        first_number, first_text, _ = lines[0]
        where = f"{name}:{first_number}"
        problem = feed.problem
        if len(lines) > 1 and (cells is None or (header is not None and len(cells) != len(header))):
            # A quoted cell that does not close where it should: only its first line is lost.
            feed.read_again(lines[1:])
            problem = _unterminated(first_text)
        elif cells is None:
            problem = (
                _unterminated(first_text) if _open_quote_column(first_text) else _not_csv(error)
            )
        elif not cells:
            continue  # a blank line is no row
        if problem is not None:
            yield InputError(where, problem)
            if header is None and not header_problem:
                header_problem = f"line {first_number}: {problem}"
        elif header_problem:
            yield InputError(
                where,
                f"the header could not be read ({header_problem}), so this "
                "row's cells have no column names; fix the header",
            )
        elif header is None:
            header = cells
        elif len(cells) == len(header):
            yield Document(dict(zip(header, cells)), where)
        elif len(cells) > len(header):
            yield InputError(
                where, f"the row has {len(cells)} cells but the header names {len(header)} columns"
            )
        else:
            row: dict[str, str | None] = dict.fromkeys(header)  # missing cells at the end: None
            row.update(zip(header, cells))
            yield Document(row, where)


_QUOTING = (
    "a quoted cell starts and ends with '\"' and is followed by a comma or the end of "
    "the line; write a '\"' inside it as '\"\"'"
)


def _not_csv(error: str) -> str:
    if "field limit" in error:
        return (
            f"not valid CSV: a cell is longer than {csv.field_size_limit():,} characters, the "
            "most a cell may hold; shorten it"
        )
    return f"not valid CSV: {error}; {_QUOTING}"


def _unterminated(text: str) -> str:
    column = _open_quote_column(text)
    at = f" at column {column}" if column else ""
    return (
        f"unterminated quote: the quoted cell that opens{at} does not close before the end "
        "of the file or in a way that fits the header (the lines after it are read as rows "
        "again); add the missing '\"', and write a '\"' inside a quoted cell as '\"\"'"
    )


def _open_quote_column(text: str) -> int:
    """The column (from 1) of the quote that opens the cell still open at the end of a CSV line,
    or 0 when every quoted cell on the line closes."""
    opened, inside, cell_start = 0, False, True
    index = 0
    while index < len(text):
        char = text[index]
        if inside:
            if char == '"':
                if text.startswith('"', index + 1):
                    index += 1  # a doubled quote inside the cell
                else:
                    inside = False
        elif char == '"' and cell_start:
            inside, opened = True, index + 1
        cell_start = not inside and char == ","
        index += 1
    return opened if inside else 0


def text_stream(text: str) -> IO[str]:
    return io.StringIO(text)
