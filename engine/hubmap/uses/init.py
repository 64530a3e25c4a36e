"""`hubmap init SAMPLE`: a starter mapping from a sample payload.

A sample of a platform hubmap ships a mapping for gets that mapping, its parameters set from the
sample (the currency its orders are in, the shop's address) or from --param, with the files it
reads (catalogs, example inputs) beside it and its example cases pinned to the values they were
written for; any other sample gets a commented skeleton listing the fields its records carry.
The written mapping is then checked (validate, and `hubmap test` for a shipped one).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hubmap.inputs import InputError, read_documents
from hubmap.mapping import check_file
from hubmap.problems import Problem
from hubmap.starters import skeleton, starter
from hubmap.starters.recognise import FORM_OF, Recognition, recognise, records_of
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, Outcome, outcome_of
from hubmap.uses.test import run_cases

SCHEMA_FILE = "mapping.schema.json"


@dataclass(frozen=True)
class ParamChoice:
    name: str
    value: str
    origin: str  # "the sample", "--param or the environment", "the default"


@dataclass
class InitReport:
    sample: str
    records: int
    recognition: Recognition | None
    mapping_file: str
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already there, the same
    params: list[ParamChoice] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # validate's, on the written file
    cases_passed: int = 0
    cases_failed: int = 0
    unreadable: list[str] = field(default_factory=list)  # sample documents that did not decode


def init(
    sample: str,
    into: str = "mappings",
    *,
    form: bool = False,
    name: str | None = None,
    force: bool = False,
) -> Outcome:
    """Write the starter mapping for `sample` into the folder `into`."""
    outcome = outcome_of(lambda: _init(sample, into, form, name, force))
    return outcome.value if isinstance(outcome.value, Outcome) else outcome


def _init(sample: str, into: str, form: bool, name: str | None, force: bool) -> Outcome:
    unreadable: list[str] = []

    def decoded() -> Iterator[Any]:
        for item in read_documents(sample):
            if isinstance(item, InputError):
                unreadable.append(f"{item.where}: {item.reason}")
            else:
                yield item.data

    records = records_of(decoded())
    if not records:
        why = f" ({unreadable[0]})" if unreadable else ""
        return _usage(
            f"{sample}: no records to start from{why}; give a JSON, NDJSON or CSV "
            "file of the shop's orders"
        )
    recognition = recognise(records)
    folder = Path(into)
    if recognition is not None:
        shipped = (
            FORM_OF.get(recognition.mapping, recognition.mapping) if form else recognition.mapping
        )
        report = InitReport(
            sample, len(records), recognition, str(folder / shipped), unreadable=unreadable
        )
        refusal = _write_shipped(report, shipped, folder, force)
    else:
        chosen = name or _slug(Path(sample).stem) + "-contacts"
        report = InitReport(
            sample, len(records), None, str(folder / f"{chosen}.yaml"), unreadable=unreadable
        )
        text = skeleton.skeleton(chosen, sample, records, SCHEMA_FILE, report.mapping_file)
        refusal = _write(report, Path(report.mapping_file), text, force)
    if refusal is not None:
        return _usage(refusal)
    schema_refusal = _write(report, folder / SCHEMA_FILE, _schema_text(), force=True)
    if schema_refusal is not None:
        return _usage(schema_refusal)
    _check(report)
    failed = any(p.is_error for p in report.problems) or report.cases_failed
    return Outcome(report, EXIT_PROBLEMS if failed else EXIT_OK)


def _write_shipped(report: InitReport, shipped: str, folder: Path, force: bool) -> str | None:
    text = _shipped_text(shipped)
    defaults = starter.declared_defaults(text)
    found = report.recognition.params if report.recognition else {}
    chosen: dict[str, str] = {}
    for param, default in defaults.items():
        if os.environ.get(param) is not None:
            value, origin = os.environ[param], "--param or the environment"
        elif param in found:
            value, origin = found[param], "the sample"
        else:
            value, origin = default, "the default"
        report.params.append(ParamChoice(param, value, origin))
        if value != default:
            chosen[param] = value
    text = starter.with_defaults(text, chosen)
    text = starter.with_pinned_cases(text, {k: defaults[k] for k in chosen})
    text = starter.with_schema_header(text, SCHEMA_FILE)
    refusal = _write(report, folder / shipped, text, force)
    if refusal is not None:
        return refusal
    for relative in starter.referenced_files(text):
        source = _shipped_bytes(relative)
        if source is None:
            continue
        refusal = _write(report, folder / relative, source, force)
        if refusal is not None:
            return refusal
    return None


def _write(report: InitReport, path: Path, content: str | bytes, force: bool) -> str | None:
    """Write `path` (its folders too); refuse to replace a different file unless `force`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.exists():
        if path.read_bytes() == data:
            report.kept.append(str(path))
            return None
        if not force:
            return (
                f"{path} exists and differs from what hubmap init would write; move it, or "
                "give --force to replace it"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    report.written.append(str(path))
    return None


def _check(report: InitReport) -> None:
    checked = check_file(report.mapping_file, deep=True)
    report.problems = list(checked.problems)
    if checked.mapping is not None and checked.ok and checked.mapping.examples:
        results = run_cases(Path(report.mapping_file), checked.mapping)
        report.cases_failed = sum(1 for r in results if not r.passed)
        report.cases_passed = len(results) - report.cases_failed


def _shipped_text(name: str) -> str:
    return resources.files("hubmap").joinpath("shipped", name).read_text(encoding="utf-8")


def _shipped_bytes(relative: str) -> bytes | None:
    resource = resources.files("hubmap").joinpath("shipped", *relative.split("/"))
    return resource.read_bytes() if resource.is_file() else None


def _schema_text() -> str:
    return resources.files("hubmap").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "shop"


def _usage(message: str) -> Outcome:
    return Outcome(None, EXIT_USAGE, message=message)
