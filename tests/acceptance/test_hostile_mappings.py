"""Hostile mappings: expressions and templates that would loop for hours or grow until memory runs
out.  Each one that passes `validate` is stopped on the record that sets it off, within seconds and
little memory; the record is rejected with the property's name and the bound it passed, and the
next record of the same run is evaluated as usual.  What no bound can make sensible is refused by
`validate` (tests/cases/validate/negative/template-*.yaml)."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from hubmap.evaluate import CompiledMapping, OrderValues, Rejected
from hubmap.expressions import budget
from hubmap.mapping import check_file, load_mapping
from hubmap.uses import plan as planning

MIB = 1024 * 1024
WALL_SECONDS = 5.0  # a stopped record returns well within this (its bound: 0.5 s of CPU here)
PEAK_BYTES = 100 * MIB  # every case stays far below (the bugs took gigabytes)
SHORT_LIMIT = 0.5  # RECORD_SECONDS for these tests, so that they run quickly

MAPPING = """\
version: 1
name: hostile
{lets}
records:
  id: id
  time: created_at
  contact: email
target:
  kind: contacts
properties:
  plain:
    type: string
    from: email
  hostile:
    type: string
    {kind}: {text}
"""

TEXT = "x" * 5_000
NAMES = [f"n{i}" for i in range(300)]
BIG_NUMBER = 99_999_999_999


def doubled(step: str, times: int) -> str:
    return step * times


def template(body: str) -> str:
    """The template only on a record with `bomb`: the next record must go through."""
    return "{% if record.bomb is defined %}{% set b = record.bomb %}" + body + "{% endif %}"


TIME = "took longer than 0.5 s (the limit for one record)"
SLOW = template(
    "{% for a in b %}{% for c in b %}{% for d in b %}{% endfor %}{% endfor %}{% endfor %}"
)  # 125 billion rounds

HOSTILE = [
    # templates
    pytest.param(
        "template", SLOW, TEXT, "", TIME, id="nested-loops-over-a-long-text-without-output"
    ),
    pytest.param(
        "template",
        template("{% for a in b %}{% for c in b %}{{ '' }}{% endfor %}{% endfor %}"),
        TEXT,
        "",
        TIME,
        id="nested-loops-with-empty-output",
    ),
    pytest.param(
        "template",
        template("{% set x = b %}" + doubled("{% set x = x * x %}", 20) + "{{ x }}"),
        BIG_NUMBER,
        "",
        "'*' would give a number of more than 4,096 bits",
        id="big-integer-multiply",
    ),
    pytest.param(
        "template",
        template("{% set x = b %}" + doubled("{% set x = x + x * x %}", 20) + "{{ x }}"),
        BIG_NUMBER,
        "",
        "'*' would give a number of more than 4,096 bits",
        id="big-integer-add-multiply",
    ),
    pytest.param(
        "template",
        template("{% set x = b %}" + doubled("{% set x = x ~ x %}", 30) + "{{ x | length }}"),
        TEXT,
        "",
        "'~' would build a value of 1,280,000 characters; the limit is 1,000,000",
        id="concatenation-doubling",
    ),
    pytest.param(
        "template",
        template("{% set x = [b] %}" + doubled("{% set x = [x, x] %}", 40) + "{{ x }}"),
        TEXT,
        "",
        "a list or object written in the template would read a value of more than "
        "10,000,000 items and characters",
        id="list-literal-doubling",
    ),
    pytest.param(
        "template",
        template(
            "{% set x = (b, 1) %}" + doubled("{% set x = (x, x) %}", 40) + "{{ {x: 1} | length }}"
        ),
        TEXT,
        "",
        "more than 10,000,000 items and characters",
        id="tuple-doubling-then-hashing",
    ),
    pytest.param(
        "template",
        template("{% set x = [b] * 1000 %}{% set y = [x] * 1000 %}{{ y | length }}"),
        TEXT,
        "",
        "'*' would build a value of more than 10,000,000 items and characters",
        id="list-times-list",
    ),
    pytest.param(
        "template",
        template("{% for a in b %}{{ (b * 100) | length }}{% endfor %}"),
        TEXT,
        "",
        "the values built for this record take more than 64 MiB",
        id="many-large-temporaries",
    ),
    pytest.param(
        "template",
        template(
            "{% set x = b %}"
            + doubled("{% set x %}{{ x }}{{ x }}{% endset %}", 10)
            + "{{ x | length }}"
        ),
        TEXT,
        "",
        "a {% set %} or {% filter %} block would build a value of 1,280,000 characters",
        id="block-set-doubling",
    ),
    pytest.param(
        "template",
        template("{% set x = {'a': [[b] * 100] * 10} %}{{ x.items() }}"),
        TEXT,
        "",
        "writing a list or object would read a value of more than 1,000,000",
        id="writing-a-view-of-repeats",
    ),
    pytest.param(
        "from",
        "bomb && timestamp(join('', [bomb, bomb]))",
        "1" * 100_000,
        "",
        "is not a timestamp (it has 200,000 characters)",
        id="timestamp-of-a-long-text",
    ),
    pytest.param(
        "template",
        template("{% for a in b %}{{ b }}{% endfor %}"),
        TEXT,
        "",
        "output is longer than 1,000,000 characters",
        id="long-output",
    ),
    pytest.param(
        "template",
        template("{% for a in b %}{% for c in b %}{{ a ~ b }}{% endfor %}{% endfor %}"),
        TEXT,
        "",
        "output is longer than 1,000,000 characters",
        id="nested-loops-with-output",
    ),
    pytest.param(
        "template",
        template("{{ (b * 100) | replace('x', b) }}"),
        TEXT,
        "",
        "replace() would build a text of",
        id="replace-growth",
    ),
    pytest.param(
        "template",
        template("{{ ([b] * 200) | join(b) }}"),
        TEXT,
        "",
        "join() would build a text of",
        id="join-filter-growth",
    ),
    pytest.param(
        "template",
        template("{{ ([[b] * 1000] * 1000) | string }}"),
        TEXT,
        "",
        "more than 10,000,000 items and characters",
        id="string-filter-of-repeats",
    ),
    pytest.param(
        "template",
        template("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
        TEXT,
        "",
        "a template may count at most 1,000 in all",
        id="range-loops",
    ),
    # JMESPath
    pytest.param(
        "from",
        "bomb && length([bomb, bomb, bomb, bomb][]" + doubled(" | [@, @, @, @][]", 10) + ")",
        ["a"],
        "",
        "flattening ([]) would build a value of 1,048,576 items; the limit is 1,000,000",
        id="flatten-of-repeated-lists",
    ),
    pytest.param(
        "from",
        "bomb && to_string([bomb, bomb]" + doubled(" | [@, @]", 40) + ")",
        TEXT,
        "",
        "to_string() would build a text of",
        id="to-string-of-repeats",
    ),
    pytest.param(
        "from",
        "bomb && [bomb, bomb]" + doubled(" | [@, @]", 40),
        TEXT,
        "",
        "the expression gives a value that repeats parts of itself more than 10,000,000",
        id="multiselect-repeats-as-the-result",
    ),
    pytest.param(
        "from",
        "bomb && join('', [bomb, bomb]" + doubled(" | [@, @][]", 12) + ")",
        TEXT,
        "",
        "join() would build a text of",
        id="join-of-repeated-texts",
    ),
    pytest.param(
        "from",
        "bomb && length(sort([bomb, join('', [bomb, 'y'])]" + doubled(" | [@, @][]", 12) + "))",
        TEXT,
        "",
        "sort() would compare texts of 40,964,096 characters in all",
        id="sort-of-repeated-long-texts",
    ),
    pytest.param(
        "from",
        "bomb && length(sort_by([bomb, join('', [bomb, 'y'])]"
        + doubled(" | [@, @][]", 12)
        + ", &@))",
        TEXT,
        "",
        "sort_by() would compare texts of",
        id="sort-by-long-text-keys",
    ),
    pytest.param(
        "from",
        "bomb && max([bomb, join('', [bomb, 'y'])]" + doubled(" | [@, @][]", 12) + ")",
        TEXT,
        "",
        "max() would compare texts of",
        id="max-of-long-texts",
    ),
    pytest.param(
        "from",
        "bomb && to_string(([bomb]"
        + doubled(" | [@, @]", 40)
        + ") == ([bomb]"
        + doubled(" | [@, @]", 40)
        + "))",
        TEXT,
        "",
        "'==' would read a value of more than 10,000,000",
        id="equality-of-repeats",
    ),
    pytest.param(
        "from",
        "bomb && length(unique([bomb]" + doubled(" | [@, @]", 40) + "))",
        TEXT,
        "",
        "comparing values would read a value of more than 10,000,000",
        id="unique-of-repeats",
    ),
    pytest.param(
        "from",
        "bomb && contains([bomb]" + doubled(" | [@, @]", 40) + ", 'x')",
        TEXT,
        "",
        "comparing values would read a value",
        id="contains-in-repeats",
    ),
    pytest.param(
        "from",
        "bomb && length(bomb[?let('all')[?length(let('all')[?@ == 'nope']) > `0`]])",
        NAMES,
        'let:\n  all: "bomb"',
        TIME,
        id="nested-filters-over-a-let",
    ),
    pytest.param(
        "from",
        "bomb && length(bomb[].reverse(let('big')))",
        NAMES,
        'let:\n  big: "bomb && [bomb, bomb][]' + doubled(" | [@, @][]", 8) + '"',
        "the values built for this record take more than 64 MiB",
        id="a-let-list-copied-for-every-item",
    ),
    pytest.param(
        "from",
        "bomb && length(bomb[].let('big'))",
        NAMES,
        'let:\n  big: "bomb && [bomb, bomb]' + doubled(" | [@, @]", 30) + '"',
        "repeats parts of itself",
        id="a-let-repeats-value-in-every-item",
    ),
]


def _plan(
    tmp_path: Path, kind: str, text: str, bomb: Any, lets: str = ""
) -> tuple[Any, float, int]:
    mapping = tmp_path / "hostile.yaml"
    mapping.write_text(
        MAPPING.format(kind=kind, text=json.dumps(text), lets=lets), encoding="utf-8"
    )
    assert [p for p in check_file(mapping).problems if p.is_error] == []  # validate passes it
    orders = [
        {"id": 1, "email": "a@example.com", "created_at": "2024-05-01T10:00:00Z", "bomb": bomb},
        {"id": 2, "email": "b@example.com", "created_at": "2024-05-01T11:00:00Z"},
    ]
    source = tmp_path / "orders.ndjson"
    source.write_text("".join(json.dumps(o) + "\n" for o in orders), encoding="utf-8")
    tracemalloc.start()
    started = time.monotonic()
    try:
        plan = planning.plan(str(mapping), str(source)).unwrap()
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return plan, seconds, peak


@pytest.fixture(autouse=True)
def short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "RECORD_SECONDS", SHORT_LIMIT)


@pytest.mark.parametrize(("kind", "text", "bomb", "lets", "reason"), HOSTILE)
def test_a_hostile_property_rejects_its_record_quickly_and_the_run_goes_on(
    tmp_path: Path, kind: str, text: str, bomb: Any, lets: str, reason: str
) -> None:
    plan, seconds, peak = _plan(tmp_path, kind, text, bomb, lets)
    assert seconds < WALL_SECONDS
    assert peak < PEAK_BYTES
    (rejected,) = plan.rejected
    assert (rejected.order_id, rejected.property_name) == ("1", "hostile")
    assert reason in rejected.reason
    assert rejected.raw is not None  # kept for a replay once the mapping is fixed
    (contact,) = plan.contacts  # the next record of the run
    assert contact.contact == "b@example.com" and contact.values["plain"] == "b@example.com"
    assert budget.ACTIVE == {}


def test_the_time_up_message_names_the_expression_and_the_limit(tmp_path: Path) -> None:
    plan, _, _ = _plan(tmp_path, "template", SLOW, TEXT)
    (rejected,) = plan.rejected
    assert rejected.reason.startswith(
        "the evaluation took longer than 0.5 s (the limit for one "
        "record) in `{% if record.bomb is defined %}"
    )
    assert rejected.reason.endswith("; simplify the expression")


def test_the_time_up_never_fires_after_the_evaluation(tmp_path: Path) -> None:
    mapping = tmp_path / "hostile.yaml"
    mapping.write_text(
        MAPPING.format(kind="template", text=json.dumps(SLOW), lets=""), encoding="utf-8"
    )
    compiled = CompiledMapping(load_mapping(mapping))
    for attempt in range(3):
        result = compiled.evaluate(
            {
                "id": attempt,
                "email": "a@example.com",
                "created_at": "2024-05-01T10:00:00Z",
                "bomb": TEXT,
            },
            "x",
        )
        assert isinstance(result, Rejected) and TIME in result.reason
        busy_until = time.thread_time() + 2 * SHORT_LIMIT  # computing, outside any evaluation
        while time.thread_time() < busy_until:
            pass
    assert budget.ACTIVE == {}


def test_threads_have_their_own_budgets(tmp_path: Path) -> None:
    mapping = tmp_path / "hostile.yaml"
    mapping.write_text(
        MAPPING.format(kind="template", text=json.dumps(SLOW), lets=""), encoding="utf-8"
    )
    compiled = CompiledMapping(load_mapping(mapping))
    results: dict[str, Any] = {}

    def evaluate(name: str, bomb: Any, times: int) -> None:
        for n in range(times):
            order = {"id": n, "email": "a@example.com", "created_at": "2024-05-01T10:00:00Z"}
            if bomb is not None:
                order["bomb"] = bomb
            results[name] = compiled.evaluate(order, name)

    threads = [
        threading.Thread(target=evaluate, args=("hostile", TEXT, 1)),
        threading.Thread(target=evaluate, args=("plain", None, 20_000)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert isinstance(results["hostile"], Rejected) and TIME in results["hostile"].reason
    assert isinstance(results["plain"], OrderValues)  # many short records: never stopped
    assert budget.ACTIVE == {}


def test_a_hostile_records_path_rejects_its_document_only(tmp_path: Path) -> None:
    mapping = tmp_path / "hostile.yaml"
    text = MAPPING.format(kind="from", text='"email"', lets="").replace(
        "records:\n",
        'records:\n  path: "bomb && ([bomb, bomb]' + doubled(" | [@, @]", 40) + ') || @"\n',
    )
    mapping.write_text(text, encoding="utf-8")
    source = tmp_path / "orders.ndjson"
    source.write_text(
        json.dumps({"bomb": [1]})
        + "\n"
        + json.dumps({"id": 2, "email": "b@example.com", "created_at": "2024-05-01T11:00:00Z"})
        + "\n",
        encoding="utf-8",
    )
    plan = planning.plan(str(mapping), str(source)).unwrap()
    (rejected,) = plan.rejected
    assert rejected.reason.startswith("records.path: the expression gives a value that repeats")
    assert [c.contact for c in plan.contacts] == ["b@example.com"]


def test_a_hostile_derive_gives_no_value_and_the_contact_is_written(tmp_path: Path) -> None:
    mapping = tmp_path / "hostile.yaml"
    derive = (
        "length(keys(@)[?length(keys(@)[?length(keys(@)[?length(keys(@)[?@ == 'x']) > "
        "`0`]) > `0`]) > `0`])"
    )
    text = MAPPING.format(kind="from", text='"email"', lets="") + (
        "  slow:\n    type: number\n    derive: " + json.dumps(derive) + "\n"
    )
    mapping.write_text(text, encoding="utf-8")
    compiled = CompiledMapping(load_mapping(mapping))
    merged = {f"p{i}": i for i in range(120)}
    started = time.monotonic()
    assert compiled.derive(merged) == {}
    assert time.monotonic() - started < WALL_SECONDS
    assert budget.ACTIVE == {}


def test_the_bounds_are_documented_constants() -> None:
    for name in (
        "RECORD_SECONDS",
        "MAX_TEXT_LENGTH",
        "MAX_LIST_LENGTH",
        "MAX_INT_BITS",
        "MAX_VALUE_SIZE",
        "MAX_BUILT_BYTES",
    ):
        assert getattr(budget, name) > 0
    assert budget.MAX_TEXT_LENGTH >= 65_536  # HubSpot's longest value fits
