"""Mapping files: load (YAML with positions), check (schema, then meaning), build the model."""

from __future__ import annotations

import os
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field, replace
from pathlib import Path

from hubmap.mapping import params
from hubmap.mapping.build import build_mapping
from hubmap.mapping.checks import catalog_problems, raw_problems, semantic_problems
from hubmap.mapping.loader import LoadedDocument, load_file
from hubmap.mapping.model import Mapping
from hubmap.mapping.schema import schema_problems
from hubmap.problems import HubmapError, Location, Problem

MAPPING_SUFFIXES = (".yaml", ".yml")


@dataclass
class CheckedMapping:
    """The outcome of reading one file: the model when it is usable, and every problem found."""

    file: str
    mapping: Mapping | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mapping is not None and not any(p.is_error for p in self.problems)


def check_file(
    path: str | Path, *, deep: bool = False, environ: MappingType[str, str] | None = None
) -> CheckedMapping:
    """Every problem of one mapping file; `deep` also reads its catalogs (what `validate` does;
    a run reads them once, when it starts); `environ`: see `check_document`."""
    doc = load_file(path)
    return check_document(doc, deep=deep, environ=environ)


def check_document(
    doc: LoadedDocument, *, deep: bool = False, environ: MappingType[str, str] | None = None
) -> CheckedMapping:
    """`environ`: where the parameters' values come from (the process's environment when
    None: `--param` on the command line sets them there)."""
    problems = list(doc.problems)
    if doc.data is None:
        return CheckedMapping(doc.file, None, _sorted(problems))
    problems += raw_problems(doc)
    values, refused_values = params.resolve(doc, os.environ if environ is None else environ)
    problems += refused_values
    params.substitute(doc, values)
    # A value the loader refused is None in the data; don't report it again as a schema error.
    refused = [p.location.path for p in doc.problems]
    structural = [
        p
        for p in schema_problems(doc)
        if not any(p.location.path[: len(path)] == path for path in refused)
    ]
    problems += structural
    mapping = None
    # Duplicate keys and bad tags leave holes in the data; the model needs it whole.
    if not structural and doc.ok:
        mapping = replace(build_mapping(doc), params=tuple(values.values()))
        problems += semantic_problems(mapping, doc)
        if deep and not any(p.is_error for p in problems):
            problems += catalog_problems(mapping, doc)
    return CheckedMapping(doc.file, mapping, _sorted(problems))


def load_mapping(path: str | Path) -> Mapping:
    """The model of a mapping file, or HubmapError with every problem when it is not usable."""
    checked = check_file(path)
    if not checked.ok or checked.mapping is None:
        raise HubmapError([p for p in checked.problems if p.is_error])
    return checked.mapping


def collect_files(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """Expand folders into their *.yaml / *.yml files (recursively, sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if _is_dir(path):
            found = sorted(
                p for p in path.rglob("*") if p.suffix in MAPPING_SUFFIXES and p.is_file()
            )
            if not found:
                problems.append(
                    Problem(
                        "HM101",
                        f"no *.yaml or *.yml files in folder '{raw}'",
                        Location(raw),
                        hint="give a folder that holds mappings",
                    )
                )
            files.extend(found)
        else:
            files.append(path)
    return files, problems


def _is_dir(path: Path) -> bool:
    """Whether `path` is a folder; a name the system refuses (too long) is read as a file, which
    then reports why it cannot be read."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(
        problems, key=lambda p: (p.location.file, p.location.line, p.location.column, p.code)
    )
