"""Read input documents as a stream: JSON, NDJSON or CSV, from a file or standard input.

Memory stays flat in the number of orders for NDJSON and CSV (one line at a time); a JSON file is
one document and is read whole.  A line that is not JSON does not stop the stream: it comes out as
an `InputError` item, so the caller can reject it with its reason and go on.
"""

from __future__ import annotations

import csv
import io
import json
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


def guess_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if path == "-":
        return "ndjson"  # a stream; one JSON document per line (a single document works too)
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InputFormatError(
            f"cannot tell the format of '{path}' from its name; use --input-format "
            f"({', '.join(INPUT_FORMATS)})")
    return SUFFIX_FORMATS[suffix]


def read_documents(path: str, input_format: str | None = None) -> Iterator[Document | InputError]:
    """Yield the documents of `path` ('-' for standard input) one by one."""
    fmt = guess_format(path, input_format)
    if path == "-":
        yield from _read_stream(sys.stdin, "<stdin>", fmt)
        return
    file_path = Path(path)
    if not file_path.is_file():
        raise InputFormatError(f"input file '{path}' does not exist")
    with file_path.open("r", encoding="utf-8-sig", newline="") as stream:
        yield from _read_stream(stream, path, fmt)


def documents_from_value(value: Any, where: str) -> Iterator[Document]:
    """An in-memory input (an example case's 'input:') as a single document."""
    yield Document(value, where)


def _read_stream(stream: IO[str], name: str, fmt: str) -> Iterator[Document | InputError]:
    if fmt == "json":
        try:
            yield Document(json.load(stream, parse_float=Decimal), name)
        except json.JSONDecodeError as error:
            yield InputError(f"{name}:{error.lineno}:{error.colno}",
                             f"not valid JSON: {error.msg}")
        except UnicodeDecodeError:
            yield InputError(name, "the file is not UTF-8 text")
        return
    if fmt == "ndjson":
        yield from _read_ndjson(stream, name)
        return
    if fmt == "csv":
        yield from _read_csv(stream, name)
        return
    raise InputFormatError(f"unknown input format '{fmt}'; use one of {', '.join(INPUT_FORMATS)}")


def _read_ndjson(stream: IO[str], name: str) -> Iterator[Document | InputError]:
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                yield Document(json.loads(line, parse_float=Decimal), where)
            except json.JSONDecodeError as error:
                yield InputError(where, f"not valid JSON: {error.msg} (column {error.colno})")
    except UnicodeDecodeError:
        yield InputError(name, "the file is not UTF-8 text")


def _read_csv(stream: IO[str], name: str) -> Iterator[Document | InputError]:
    reader = csv.DictReader(stream)
    try:
        for row in reader:
            where = f"{name}:{reader.line_num}"
            if None in row:  # more cells than header columns
                yield InputError(where, f"the row has {len(row) - 1 + len(row[None])} cells but "
                                 f"the header names {len(reader.fieldnames or [])} columns")
                continue
            yield Document(row, where)
    except csv.Error as error:
        yield InputError(f"{name}:{reader.line_num}", f"not valid CSV: {error}")
    except UnicodeDecodeError:
        yield InputError(name, "the file is not UTF-8 text")


def text_stream(text: str) -> IO[str]:
    return io.StringIO(text)
