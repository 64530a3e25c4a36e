"""Run a mapping's example cases (`hubmap test`): orders in, expected HubSpot values out.

Each case goes through exactly the functions a real run uses (evaluate, the version decisions,
fold, derive, wire format), its input read in arrival order; a failure names the case, the
contact, the property, what was expected and what came out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping, Rejected
from hubmap.fold import ContactFolder
from hubmap.inputs import Document, InputError, read_documents
from hubmap.mapping.model import Example, Mapping, PropertyType
from hubmap.plan import Plan, ValuesSeen, plan_outcomes, submission_fields
from hubmap.problems import HubmapError, Location


@dataclass(frozen=True)
class Mismatch:
    contact: str
    property: str
    expected: Any
    got: Any


@dataclass
class CaseResult:
    mapping: str
    name: str
    location: Location
    mismatches: list[Mismatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.errors


def example_documents(mapping: Mapping, example: Example) -> Iterator[Document | InputError]:
    if example.input_file is not None:
        path = Path(mapping.file).parent / example.input_file
        yield from read_documents(str(path))
    else:
        yield Document(example.input, f"example '{example.name}'")


def run_examples(mapping: Mapping, indexes: Sequence[int] | None = None) -> list[CaseResult]:
    """The example cases of `mapping` (those at `indexes`, else all), with its catalogs read
    from their files."""
    cases = list(mapping.examples) if indexes is None else [mapping.examples[i] for i in indexes]
    try:
        catalogs = load_catalogs(mapping)
    except HubmapError as error:  # a catalog that cannot be read fails every case, with why
        return [
            CaseResult(
                mapping.file, e.name, e.location, errors=[f"the case could not run: {error}"]
            )
            for e in cases
        ]
    compiled = CompiledMapping(mapping, catalogs)
    return [run_example(compiled, example) for example in cases]


def never_given_by_examples(mapping: Mapping) -> list[str]:
    """The properties no example case's record gives a value (none without example cases)."""
    try:
        compiled = CompiledMapping(mapping, load_catalogs(mapping))
        seen = ValuesSeen()
        for example in mapping.examples:
            for _ in seen.watch(compiled.outcomes(example_documents(mapping, example))):
                pass
    except Exception:  # noqa: BLE001 - a case that cannot run is reported by run_examples
        return []
    return seen.never_given(compiled)


def run_example(compiled: CompiledMapping, example: Example) -> CaseResult:
    mapping = compiled.mapping
    result = CaseResult(mapping.file, example.name, example.location)
    existing = {k: _as_text(v) for k, v in example.existing.items()}
    try:
        plan = plan_outcomes(
            compiled,
            compiled.outcomes(example_documents(mapping, example)),
            default_current=existing,
        )
    except Exception as error:  # an input file that cannot be read is a failed case, not a crash
        result.errors.append(f"the case could not run: {error}")
        return result
    got = _got(compiled, plan, result)
    if example.expect is not None:
        if len(got) != 1:
            what = "submissions" if mapping.is_forms else "contacts"
            result.errors.append(
                f"'expect' needs exactly one contact, but the input gave "
                f"{len(got)} {what}: {', '.join(sorted(got)) or 'none'}"
            )
        else:
            ((contact, values),) = got.items()
            _compare(compiled, contact, example.expect, values, result)
    if example.expect_contacts is not None:
        wanted = {
            key.strip().lower() if "@" in key else key: v
            for key, v in example.expect_contacts.items()
        }
        for contact, expected in wanted.items():
            if contact not in got:
                result.errors.append(
                    f"no contact '{contact}' came out (got: {', '.join(sorted(got)) or 'none'})"
                )
                continue
            _compare(compiled, contact, expected, got[contact], result)
        for contact in sorted(set(got) - set(wanted)):
            result.errors.append(f"contact '{contact}' came out but is not in expect_contacts")
    _check_rejections(example, plan, result)
    if example.expect_skipped is not None and example.expect_skipped != plan.orders.skipped:
        result.errors.append(
            f"expected {example.expect_skipped} skipped record(s), got {plan.orders.skipped}"
        )
    counts = dict(plan.orders.as_dict(), refunds_waiting=plan.refunds_waiting)
    wrong = [
        f"{word} {want}"
        for word, want in (example.expect_orders or {}).items()
        if counts.get(word) != want
    ]
    if wrong:
        result.errors.append(
            f"expect_orders: expected {', '.join(wrong)}; got "
            + ", ".join(f"{word} {n}" for word, n in counts.items())
        )
    return result


def _got(compiled: CompiledMapping, plan: Plan, result: CaseResult) -> dict[str, dict[str, str]]:
    if compiled.mapping.is_forms:
        got: dict[str, dict[str, str]] = {}
        folder = ContactFolder(compiled)
        for order in plan.submissions:
            fields = submission_fields(compiled, folder, order)
            fields.update({f"context.{k}": v for k, v in order.context.items()})
            got[f"{order.contact} (order {order.order_id})"] = fields
        return got
    # "" is how a value is cleared: to a case, no value
    return {
        contact.contact: {k: v for k, v in contact.values.items() if v != ""}
        for contact in plan.contacts
    }


def _compare(
    compiled: CompiledMapping,
    contact: str,
    expected: dict[str, Any],
    values: dict[str, str],
    result: CaseResult,
) -> None:
    for name, want in expected.items():
        have = values.get(name)
        if want is None:
            if have is not None:
                result.mismatches.append(Mismatch(contact, name, None, have))
            continue
        if not _equal(compiled, name, want, have):
            result.mismatches.append(Mismatch(contact, name, _as_text(want), have))


def _equal(compiled: CompiledMapping, name: str, want: Any, have: str | None) -> bool:
    if have is None:
        return False
    try:
        spec = compiled.mapping.property(name)
    except KeyError:
        spec = None
    if spec is not None and spec.type is PropertyType.NUMBER:
        try:
            return Decimal(str(want)) == Decimal(have)
        except InvalidOperation:
            return False
    return _as_text(want) == have


def _check_rejections(example: Example, plan: Plan, result: CaseResult) -> None:
    rejected = list(plan.rejected)
    for wanted in example.expect_rejected:
        match = next((r for r in rejected if _matches(wanted, r)), None)
        if match is None:
            result.errors.append(
                f"expected record {wanted.get('record')!r} to be rejected"
                + (f" ({wanted['reason_contains']!r})" if "reason_contains" in wanted else "")
                + f"; rejected: {_describe(plan.rejected) or 'none'}"
            )
        else:
            rejected.remove(match)
    for left in rejected:
        named = (
            repr(left.order_id)
            if left.order_id is not None
            else f"at position {_names(left)[0]} (no id: record: {_names(left)[0]} in "
            "expect_rejected)"
        )
        result.errors.append(
            f"record {named} was rejected: "
            + (f"{left.property_name}: " if left.property_name else "")
            + left.reason
        )


def _matches(wanted: dict[str, Any], rejected: Rejected) -> bool:
    if str(wanted.get("record")) not in _names(rejected):
        return False
    if "property" in wanted and wanted["property"] != rejected.property_name:
        return False
    return str(wanted.get("reason_contains", "")).lower() in rejected.reason.lower()


def _names(rejected: Rejected) -> tuple[str, ...]:
    """What a case may call a rejected record: its order id; one without an id, its position
    from 0 in the case's input (the list's index: "#3" at the end of where it was read)."""
    if rejected.order_id is not None:
        return (rejected.order_id, rejected.where)
    place = _PLACE.search(rejected.where)
    return (place.group(1) if place else "0", rejected.where)


_PLACE = re.compile(r"#(\d+)$")


def _describe(rejected: list[Rejected]) -> str:
    return "; ".join(
        f"{r.order_id}: {r.reason}"
        if r.order_id is not None
        else f"the record at position {_names(r)[0]} (no id): {r.reason}"
        for r in rejected
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
