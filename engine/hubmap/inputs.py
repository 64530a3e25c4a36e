"""Read input documents as a stream: JSON, NDJSON or CSV, from a file, a folder or standard input.

Memory stays flat in the number of orders for NDJSON and CSV (one line at a time); a JSON file is
one document and is read whole.  A folder is every file directly in it (not its sub-folders, not
hidden files), one after the other in name order, as one stream; each file's format comes from its
name unless one is given.  A line that is not JSON does not stop the stream: it comes out as an
`InputError` item, so the caller can reject it with its reason and go on.
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
    bytes that are not UTF-8, text that is not JSON, nesting deeper than `MAX_DEPTH`, a number of
    more digits than Python converts, a lone UTF-16 surrogate in a text (it cannot be stored or
    sent).  Never raises for what a sender wrote."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            return InputError(where, f"not UTF-8 text: byte 0x{text[error.start]:02x} at "
                                     f"offset {error.start} cannot be decoded")
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        return InputError(_at(where, error), f"not valid JSON: {error.msg}")
    except RecursionError:
        return InputError(where, f"the JSON nests deeper than {MAX_DEPTH} levels")
    except ValueError:  # an integer of more digits than int() converts
        return InputError(where, f"a number has more than {sys.get_int_max_str_digits()} digits; "
                                 "no shop amount or id is that long")
    problem = _unusable(data)
    if problem is not None:
        return InputError(where, problem)
    return Document(data, where)


def _at(where: str, error: json.JSONDecodeError) -> str:
    """`where` with the error's line and column (a one-line document: its column only)."""
    if error.lineno == 1 and ":" in where:  # an NDJSON line: where already names the line
        return f"{where}:{error.colno}"
    return f"{where}:{error.lineno}:{error.colno}"


def _unusable(data: Any) -> str | None:
    """Why a parsed document cannot be used (too deep, a lone surrogate), or None."""
    todo: list[tuple[Any, int, str]] = [(data, 1, "")]
    while todo:
        value, depth, path = todo.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return (f"the text at {path or 'the top'} holds a lone UTF-16 surrogate "
                        f"(invalid Unicode): it cannot be stored or sent")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            return f"the JSON nests deeper than {MAX_DEPTH} levels (at {_short(path, 80)})"
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return (f"a key at {path or 'the top'} holds a lone UTF-16 surrogate "
                            "(invalid Unicode): it cannot be stored or sent")
                todo.append((item, depth + 1, f"{path}.{_short(key, 40)}" if path
                             else _short(key, 40)))
        else:
            todo.extend((item, depth + 1, f"{path}[{index}]") for index, item in enumerate(value))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
    """Yield the documents of `path` (a file, a folder, or '-' for standard input) one by one."""
    if path == "-":
        yield from _read_stream(sys.stdin, "<stdin>", guess_format(path, input_format))
        return
    file_path = Path(path)
    if file_path.is_dir():
        files = folder_files(file_path, input_format)
    elif file_path.is_file():
        files = [(file_path, guess_format(path, input_format))]
    else:
        raise InputFormatError(f"input file '{path}' does not exist")
    for one, fmt in files:
        with one.open("r", encoding="utf-8-sig", newline="") as stream:
            yield from _read_stream(stream, str(one), fmt)


def folder_files(folder: Path, input_format: str | None = None) -> list[tuple[Path, str]]:
    """The files of an input folder in name order, each with its format.

    Every format is known before the first file is read, so a stray file stops the run at once
    instead of after hours of work.
    """
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.name)
    if not files:
        raise InputFormatError(f"the input folder '{folder}' holds no files")
    return [(p, guess_format(str(p), input_format)) for p in files]


def documents_from_value(value: Any, where: str) -> Iterator[Document]:
    """An in-memory input (an example case's 'input:') as a single document."""
    yield Document(value, where)


def _read_stream(stream: IO[str], name: str, fmt: str) -> Iterator[Document | InputError]:
    if fmt == "json":
        try:
            text = stream.read()
        except UnicodeDecodeError:
            yield InputError(name, "the file is not UTF-8 text")
            return
        yield parse_json(text, name)
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
            yield parse_json(line, f"{name}:{number}")
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
