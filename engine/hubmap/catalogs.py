"""Catalogs: the tables a mapping looks things up in (a shop's product export), loaded from files.

`load_catalogs(mapping)` reads each catalog the mapping declares (JSON, NDJSON or CSV, relative
to the mapping file), takes its rows (`path`, and `each` for lists inside rows - a row of `each`
carries the row it came from as `parent`, without that list) and keys them by `key` (numbers and
their digits as text are the same key; the first row with a key wins, or with `many` a key gives
the list of its rows).  The result is plain data handed to `CompiledMapping`, whose expressions
read it with `lookup('name', key)`; a key that is not in the catalog gives null and is counted
once per record (`Catalog.misses`), never a reject.  `stale()` tells a server that a file
changed, so it can load it again without a restart.
"""

from __future__ import annotations

import json
import os
import re
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hubmap.expressions import ExpressionError, compile_source
from hubmap.inputs import InputError, InputFormatError, read_documents
from hubmap.mapping.model import CatalogSpec, Mapping
from hubmap.problems import HubmapError, Problem
from hubmap.types import plain_number_text

PARENT = "parent"  # the field of an `each` row that holds the row it came from


class Catalog:
    """One catalog's rows by key, and how many looked-up keys it did not have.

    Rows loaded from a file are kept as compact JSON text (an `each` row's parent once, by
    number) and read back when looked up, the last `PARSED_KEPT` read kept: a 100,000-product
    export takes about the memory of its text, not the many times more of its Python objects."""

    def __init__(
        self,
        name: str,
        rows: dict[str, Any] | None = None,
        file: Path | None = None,
        mtime: float | None = None,
        many: bool = False,
    ):
        self.name = name
        # key -> row, or the row's number when stored (with `many`: a list of row numbers)
        self.rows: dict[str, Any] = rows or {}
        self.many = many
        self.texts: list[str] = []  # stored rows, by number
        self.parent_of = array("l")  # each stored row's parent number (-1: none)
        self.parents: list[str] = []
        self.file = file
        self.mtime = mtime
        self.misses = 0  # keys not found, each once per record
        self.missed: set[str] = set()  # a few of the keys not found, for messages
        self.missed_by_record: set[str] = set()  # the keys the current record did not find
        self._parsed: OrderedDict[int, Any] = OrderedDict()

    def store(self, key: str, text: str, parent: int) -> None:
        if self.many:
            self.rows.setdefault(key, []).append(len(self.texts))
        elif key in self.rows:
            return
        else:
            self.rows[key] = len(self.texts)
        self.texts.append(text)
        self.parent_of.append(parent)

    def get(self, key: Any) -> Any:
        if key is None or key == "":
            return None
        text = key.strip() if type(key) is str else key_text(key)  # (key_text's own, for a text)
        held = self.rows.get(text)
        if held is None:
            if text not in self.missed_by_record:
                self.missed_by_record.add(text)
                self.misses += 1
            if len(self.missed) < MISSED_KEPT:
                self.missed.add(text)
            return None
        if isinstance(held, list) and self.many and self.texts:
            return [self._row(number) for number in held]
        if not isinstance(held, int) or isinstance(held, bool):
            return held
        return self._row(held)

    def _row(self, number: int) -> Any:
        row = self._parsed.get(number)
        if row is None:
            row = _parse(self.texts[number])
            parent = self.parent_of[number]
            if parent >= 0:
                row[PARENT] = _parse(self.parents[parent])
            self._parsed[number] = row
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return row

    def take_warning(self) -> str | None:
        """The warning for the keys not found since the last one was taken (then forgotten)."""
        if not self.misses:
            return None
        warning = (
            f"catalog '{self.name}': {self.misses} key(s) looked up are not in it (for "
            f"example {', '.join(repr(k) for k in sorted(self.missed))}); they gave no "
            f"value"
        )
        self.misses = 0
        self.missed.clear()
        return warning


MISSED_KEPT = 5
PARSED_KEPT = 1_000


@dataclass
class Catalogs:
    """The catalogs of one mapping, by name."""

    by_name: dict[str, Catalog] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Catalog:
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def misses(self) -> dict[str, int]:
        return {name: c.misses for name, c in sorted(self.by_name.items()) if c.misses}

    def start_record(self) -> None:
        """A new record is evaluated: a key it does not find counts once, however many of its
        expressions look it up."""
        for catalog in self.by_name.values():
            if catalog.missed_by_record:
                catalog.missed_by_record.clear()

    def take_warnings(self) -> list[str]:
        """The misses since the last call, as summary warnings (a server reports each batch's
        own)."""
        taken = (c.take_warning() for _, c in sorted(self.by_name.items()))
        return [warning for warning in taken if warning is not None]

    def stale(self) -> bool:
        """Whether a catalog file changed since it was loaded."""
        for catalog in self.by_name.values():
            if catalog.file is not None and _mtime(catalog.file) != catalog.mtime:
                return True
        return False


def key_text(key: Any) -> str:
    """A catalog key as text: 42, 42.0 and "42" are one key."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        key = Decimal(str(key))
    if isinstance(key, Decimal) and key.is_finite() and key == key.to_integral_value():
        return plain_number_text(key)
    return str(key).strip()


def catalog_path(mapping: Mapping, spec: CatalogSpec) -> Path:
    return Path(mapping.file).parent / spec.file


def load_catalogs(mapping: Mapping) -> Catalogs:
    """Every catalog of `mapping` (HubmapError naming the catalog when one cannot be read)."""
    return Catalogs({spec.name: load_catalog(mapping, spec) for spec in mapping.catalogs})


def load_catalog(mapping: Mapping, spec: CatalogSpec) -> Catalog:
    path = catalog_path(mapping, spec)
    try:
        documents = _documents(path, spec)
        key = compile_source(spec.key)
        each = compile_source(spec.each) if spec.each is not None else None
        catalog = Catalog(spec.name, file=path, mtime=_mtime(path), many=spec.many)
        for row in documents:
            if isinstance(row, InputError):
                raise HubmapError(
                    Problem(
                        "HM415",
                        f"catalog '{spec.name}': {row.where}: {row.reason}",
                        spec.location,
                        hint="fix the catalog file",
                    )
                )
            if each is None:
                _keep(catalog, key, row, row, -1)
                continue
            inner = each(row) if isinstance(row, dict) else None
            if not isinstance(inner, list) or not inner:
                continue
            # the parent is kept without the list its rows came from (they are the rows)
            catalog.parents.append(_text({k: v for k, v in row.items() if v is not inner}))
            for item in inner:
                if isinstance(item, dict):
                    _keep(catalog, key, {**item, PARENT: row}, item, len(catalog.parents) - 1)
    except (InputFormatError, OSError) as error:
        raise HubmapError(
            Problem(
                "HM415",
                f"catalog '{spec.name}': {error}",
                spec.location,
                hint="the file is relative to the mapping's folder; .json, .ndjson or .csv",
            )
        ) from None
    except ValueError as error:  # JSON that does not parse
        raise HubmapError(
            Problem(
                "HM415",
                f"catalog '{spec.name}': {path}: not valid JSON: {error}",
                spec.location,
                hint="fix the catalog file",
            )
        ) from None
    return catalog


def _keep(catalog: Catalog, key: Any, row: Any, stored: Any, parent: int) -> None:
    """Store `stored` (the row without its parent) under the key `row` gives."""
    try:
        value = key(row) if isinstance(row, dict) else None
    except ExpressionError:
        value = None
    if value is not None and value != "":
        catalog.store(key_text(value), _text(stored), parent)


def _documents(path: Path, spec: CatalogSpec) -> Iterator[Any]:
    """The rows of a catalog file before `each`: a JSON file's array (at `path`, read item by
    item when `path` is one field name or absent, so the whole file is never objects at once),
    or each NDJSON line / CSV row."""
    if not path.is_file():
        raise InputFormatError(f"catalog file '{path}' does not exist")
    if path.suffix.lower() != ".json":
        for document in read_documents(str(path)):
            yield document if isinstance(document, InputError) else document.data
        return
    field_name = spec.path.text if spec.path is not None else None
    if field_name is None or _FIELD.fullmatch(field_name):
        with path.open("r", encoding="utf-8-sig") as stream:
            items = _array_items(_Buffer(stream), field_name)
            if items is not None:
                yield from items
                return
    data = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=Decimal)
    if spec.path is not None:
        data = compile_source(spec.path)(data)
    yield from data if isinstance(data, list) else [data]


READ_CHUNK = 1 << 20  # characters read at a time from a JSON catalog


class _Buffer:
    """A JSON text read from a file as needed: values are decoded from a window that is read
    further when a value runs past its end, and cut behind each value decoded."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.text = ""
        self.at = 0
        self.done = False

    def more(self) -> bool:
        if self.done:
            return False
        chunk = self.stream.read(READ_CHUNK)
        if not chunk:
            self.done = True
            return False
        self.text = self.text[self.at :] + chunk
        self.at = 0
        return True

    def skip(self) -> str:
        """Past white space; the next character ("" at the end)."""
        while True:
            self.at = _SPACE.match(self.text, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.text) or not self.more():
                return self.text[self.at : self.at + 1]

    def value(self) -> Any:
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except ValueError:
                if self.more():
                    continue
                raise
            if end == len(self.text) and self.more():
                continue  # a number may go on in the next chunk
            self.at = end
            return value

    def take(self, char: str) -> bool:
        if self.skip() == char:
            self.at += 1
            return True
        return False


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECODER = json.JSONDecoder(parse_float=Decimal)
_SPACE = re.compile(r"\s*")


def _array_items(source: _Buffer, field_name: str | None) -> Iterator[Any] | None:
    """The items of the document's array (the document itself, or its top-level `field_name`),
    decoded one at a time; None when the document is not shaped so."""
    if field_name is None:
        return _items_from(source) if source.take("[") else None
    if not source.take("{"):
        return None
    while source.skip() not in ("}", ""):
        name = source.value()
        if not source.take(":"):
            return None
        if name == field_name:
            return _items_from(source) if source.take("[") else None
        source.value()  # another member: read past it
        source.take(",")
    return iter(())  # the field is absent: no rows


def _items_from(source: _Buffer) -> Iterator[Any]:
    while source.skip() not in ("]", ""):
        yield source.value()
        source.take(",")


def _text(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str)


def _parse(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
