"""Catalogs: the tables a mapping looks things up in (a shop's product export), loaded from files.

`load_catalogs(mapping)` reads each catalog the mapping declares (JSON, NDJSON or CSV, relative
to the mapping file), takes its rows (`path`, and `each` for lists inside rows - a row of `each`
carries the row it came from as `parent`) and keys them by `key` (numbers and their digits as text
are the same key; the first row with a key wins).  The result is plain data handed to
`CompiledMapping`, whose expressions read it with `lookup('name', key)`; a key that is not in the
catalog gives null and is counted (`Catalog.misses`), never a reject.  `stale()` tells a server
that a file changed, so it can load it again without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hubmap.expressions import ExpressionError, compile_source
from hubmap.inputs import Document, InputError, InputFormatError, read_documents
from hubmap.mapping.model import CatalogSpec, Mapping
from hubmap.problems import HubmapError, Problem

PARENT = "parent"  # the field of an `each` row that holds the row it came from


class Catalog:
    """One catalog's rows by key, and how many looked-up keys it did not have."""

    def __init__(self, name: str, rows: dict[str, Any], file: Path | None = None,
                 mtime: float | None = None):
        self.name = name
        self.rows = rows
        self.file = file
        self.mtime = mtime
        self.misses = 0
        self.missed: set[str] = set()  # a few of the keys not found, for messages

    def get(self, key: Any) -> Any:
        if key is None or key == "":
            return None
        text = key_text(key)
        row = self.rows.get(text)
        if row is None:
            self.misses += 1
            if len(self.missed) < MISSED_KEPT:
                self.missed.add(text)
        return row


MISSED_KEPT = 5


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

    def warnings(self) -> list[str]:
        return [f"catalog '{name}': {c.misses} key(s) looked up are not in it (for example "
                f"{', '.join(repr(k) for k in sorted(c.missed))}); they gave no value"
                for name, c in sorted(self.by_name.items()) if c.misses]

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
    if isinstance(key, Decimal) and key == key.to_integral_value():
        return str(key.quantize(Decimal(1)))
    return str(key).strip()


def catalog_path(mapping: Mapping, spec: CatalogSpec) -> Path:
    return Path(mapping.file).parent / spec.file


def load_catalogs(mapping: Mapping) -> Catalogs:
    """Every catalog of `mapping` (HubmapError naming the catalog when one cannot be read)."""
    return Catalogs({spec.name: load_catalog(mapping, spec) for spec in mapping.catalogs})


def load_catalog(mapping: Mapping, spec: CatalogSpec) -> Catalog:
    path = catalog_path(mapping, spec)
    try:
        documents = list(read_documents(str(path)))
    except (InputFormatError, OSError) as error:
        raise HubmapError(Problem("HM415", f"catalog '{spec.name}': {error}", spec.location,
                                  hint="the file is relative to the mapping's folder; .json, "
                                       ".ndjson or .csv")) from None
    bad = [d for d in documents if isinstance(d, InputError)]
    if bad:
        raise HubmapError(Problem("HM415", f"catalog '{spec.name}': {bad[0].where}: "
                                  f"{bad[0].reason}", spec.location, hint="fix the catalog file"))
    key = compile_source(spec.key)
    rows: dict[str, Any] = {}
    for row in _rows(spec, [d for d in documents if isinstance(d, Document)]):
        try:
            value = key(row) if isinstance(row, dict) else None
        except ExpressionError:
            value = None
        if value is None or value == "":
            continue
        rows.setdefault(key_text(value), row)
    return Catalog(spec.name, rows, path, _mtime(path))


def _rows(spec: CatalogSpec, documents: list[Document]) -> Iterator[Any]:
    path = compile_source(spec.path) if spec.path is not None else None
    each = compile_source(spec.each) if spec.each is not None else None
    for document in documents:
        data = path(document.data) if path is not None else document.data
        for row in data if isinstance(data, list) else [data]:
            if each is None:
                yield row
                continue
            inner = each(row) if isinstance(row, dict) else None
            for item in inner if isinstance(inner, list) else ():
                if isinstance(item, dict):
                    yield {**item, PARENT: row}


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None

