"""Fuzzing the shipped mappings: whatever a mutation makes of them (flipped bytes, lost or doubled
lines, other indentation, swapped values, explicit tags, a cut-off end, huge numbers, deep
nesting), `check_file` answers with located problems that every output format of `validate` can
print, never an exception.  Files are checked as `validate` checks them (deep: catalogs read).

A seeded loop runs for a fixed time budget (so CI time stays bounded), and hypothesis shrinks
failures of a few of the operators.  Mutated files are written into a folder that also holds the
mappings' `examples/`, so catalogs and example input files resolve as they do for the originals.
"""

from __future__ import annotations

import random
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.mapping import check_file
from hubmap.report import FORMATTERS
from tests.conftest import MAPPINGS

SHIPPED = sorted(MAPPINGS.glob("*.yaml"))
FUZZ_SECONDS = 15.0
FUZZ_SEED = 20250301
TAGS = [
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!str",
    "!!timestamp",
    "!!binary",
    "!!set",
    "!!omap",
    "!!map",
    "!!seq",
    "!!python/object:os.system",
    "!!python/name:os.system",
    "!custom",
    "!<tag:example.com,2000:x>",
    "!!merge",
    "!!pairs",
]
VALUES = [
    "",
    "~",
    "null",
    "[",
    "]",
    "{",
    "}",
    "[]",
    "{}",
    "- x",
    "&a x",
    "*a",
    "*nowhere",
    "'",
    '"',
    "|",
    ">",
    "? x",
    "<<: *a",
    "'quoted'",
    '"\\x00"',
    '"\\ud800"',
    "@x",
    "`x",
    "%x",
    "0x1F",
    "0o17",
    "1e999",
    "-1e-999",
    ".nan",
    ".inf",
    "-.inf",
    "1_000",
    "0b101",
    "2024-05-16",
    "2024-05-16T10:00:00Z",
    "12:30:00",
    "yes",
    "no",
    "on",
    "True",
    "9" * 5000,
    "9" * 400,
    "1." + "9" * 5000,
    "-" + "9" * 4301,
    "x" * 10_000,
    "${NAME}",
    "${",
    "$",
    "lookup('nothing', x)",
    "let('nothing')",
    "{{ x",
    "{% for %}",
    "[" * 300 + "]" * 300,
    "{a: " * 250 + "1" + "}" * 250,
    "\t",
    "\u2028",
    "\ufeff",
]
# Expressions and templates at their parsers' limits (deep, long, huge numbers, odd characters).
EXPRESSIONS = [
    "(" * 3000 + "a" + ")" * 3000,
    "a." * 20000 + "b",
    "!" * 20000 + "a",
    "`" + "9" * 5000 + "`",
    "`1e99999`",
    "`[" + "[" * 3000 + "]" * 3000 + "]`",
    "{{ x" + "|upper" * 5000 + " }}",
    "{{ x" + ".a" * 20000 + " }}",
    "{{ " + "9" * 5000 + " }}",
    "{{ " + "(" * 3000 + "x" + ")" * 3000 + " }}",
    "{% if x %}" * 2000 + "{% endif %}" * 2000,
    "{{ 1e99999 }}",
    "{{ x[" + "9" * 5000 + "] }}",
    "lookup('p', " + "a, " * 5000 + "b)",
    "let('" + "x" * 10000 + "')",
    r"\x00",
    r"\ud800",
    r"{{ '\ud800' }}",
    "{% raw %}",
    "{#",
    r"a[?b == `\u0000`]",
]
EXPRESSION_KEYS = (
    "from",
    "template",
    "when",
    "that",
    "derive",
    "id",
    "time",
    "contact",
    "key",
    "each",
    "path",
    "match",
    "in_order",
    "order",
    "hutk",
    "version",
)
LINE = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[^:#\n]+?):(?P<rest>[ \n].*|)$")


# -- mutation operators: (random, text) -> text ----------------------------------------------------


def flip_bytes(rng: random.Random, text: str) -> bytes:
    raw = bytearray(text.encode("utf-8"))
    for _ in range(rng.randint(1, 8)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    return bytes(raw)


def delete_lines(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    start = rng.randrange(len(lines))
    del lines[start : start + rng.randint(1, 3)]
    return "".join(lines)


def duplicate_lines(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    start = rng.randrange(len(lines))
    block = lines[start : start + rng.randint(1, 4)]
    lines[start:start] = block
    return "".join(lines)


def reindent(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(lines))
        shift = rng.choice([-4, -2, -1, 1, 2, 4])
        line = lines[index]
        lines[index] = " " * shift + line if shift > 0 else line[min(-shift, _indent(line)) :]
    return "".join(lines)


def swap_values(rng: random.Random, text: str) -> str:
    """The values of two 'key: value' lines change places (a number where text was ...)."""
    lines = text.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if LINE.match(line.rstrip("\n"))]
    if len(keyed) < 2:
        return text
    first, second = rng.sample(keyed, 2)
    a, b = (LINE.match(lines[i].rstrip("\n")) for i in (first, second))
    assert a and b
    lines[first] = (
        a.group("indent") + (a.group("dash") or "") + a.group("key") + ":" + b.group("rest") + "\n"
    )
    lines[second] = (
        b.group("indent") + (b.group("dash") or "") + b.group("key") + ":" + a.group("rest") + "\n"
    )
    return "".join(lines)


def insert_tag(rng: random.Random, text: str) -> str:
    return _set_value(rng, text, lambda old: f"{rng.choice(TAGS)} {old}".rstrip())


def odd_value(rng: random.Random, text: str) -> str:
    """A value replaced by YAML oddities: huge numbers, aliases, quotes, deep nesting ..."""
    return _set_value(rng, text, lambda old: rng.choice(VALUES))


def odd_expression(rng: random.Random, text: str) -> str:
    """An expression or template replaced by one at its parser's limits (double-quoted YAML)."""
    lines = text.splitlines(keepends=True)
    keyed = [
        i
        for i, line in enumerate(lines)
        if (match := LINE.match(line.rstrip("\n")))
        and match.group("key").strip() in EXPRESSION_KEYS
    ]
    if not keyed:
        return text
    index = rng.choice(keyed)
    match = LINE.match(lines[index].rstrip("\n"))
    assert match
    value = rng.choice(EXPRESSIONS).replace('"', '\\"')
    lines[index] = (
        match.group("indent")
        + (match.group("dash") or "")
        + match.group("key")
        + ': "'
        + value
        + '"\n'
    )
    return "".join(lines)


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text))]


def deep_nesting(rng: random.Random, text: str) -> str:
    depth = rng.choice([50, 150, 250, 1000, 5000])
    if rng.random() < 0.5:
        nested = "[" * depth + "x" + "]" * depth
    else:
        nested = "\n" + "".join(f"{'  ' * (level + 2)}k{level}:\n" for level in range(depth))
    return _set_value(rng, text, lambda old: nested)


def _set_value(rng: random.Random, text: str, change: Callable[[str], str]) -> str:
    lines = text.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if LINE.match(line.rstrip("\n"))]
    if not keyed:
        return text
    index = rng.choice(keyed)
    match = LINE.match(lines[index].rstrip("\n"))
    assert match
    old = match.group("rest").strip()
    lines[index] = (
        match.group("indent")
        + (match.group("dash") or "")
        + match.group("key")
        + ": "
        + change(old)
        + "\n"
    )
    return "".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


OPERATORS: list[Callable[[random.Random, str], str | bytes]] = [
    flip_bytes,
    delete_lines,
    duplicate_lines,
    reindent,
    swap_values,
    insert_tag,
    odd_value,
    odd_expression,
    truncate,
    deep_nesting,
]


# -- what must hold for every mutant --------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder beside which the mappings' relative files (examples/) resolve."""
    path = tmp_path_factory.mktemp("fuzz")
    (path / "examples").symlink_to(MAPPINGS / "examples", target_is_directory=True)
    return path


def assert_located(path: Path, content: str | bytes) -> None:
    """check_file answers (never raises); each problem names this file, a line and a column."""
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    try:
        checked = check_file(path, deep=True)
    except Exception:  # noqa: BLE001 - a crash is what this test looks for
        pytest.fail(
            f"check_file raised on this mapping:\n{content[:3000]!r}\n{traceback.format_exc()}"
        )
    for problem in checked.problems:
        assert problem.location.file == str(path), problem
        assert problem.location.line >= 1 and problem.location.column >= 1, problem
        assert problem.code.startswith("HM") and problem.message, problem
    if checked.mapping is None:
        assert checked.problems, "no model and no problem"
    for formatter in FORMATTERS.values():  # what validate prints can be printed
        formatter(checked.problems).encode("utf-8")  # raises on a lone surrogate


def test_seeded_fuzz_loop_within_a_time_budget(folder: Path) -> None:
    rng = random.Random(FUZZ_SEED)
    texts = {path.name: path.read_text(encoding="utf-8") for path in SHIPPED}
    names = sorted(texts)
    deadline = time.monotonic() + FUZZ_SECONDS
    rounds = 0
    while time.monotonic() < deadline:
        name = names[rounds % len(names)]  # every shipped mapping in turn
        content: str | bytes = texts[name]
        for _ in range(rng.randint(1, 3)):  # a few mutations on top of each other
            operator = rng.choice(OPERATORS)
            content = operator(
                rng, content if isinstance(content, str) else content.decode("utf-8", "replace")
            )
        assert_located(folder / name, content)
        rounds += 1
    assert rounds >= 2 * len(names)  # the budget bought a real run over every mapping


@settings(max_examples=60)
@given(
    mapping=st.sampled_from(SHIPPED),
    operator=st.sampled_from([insert_tag, odd_value, swap_values, truncate, reindent]),
    seed=st.integers(0, 2**32),
)
def test_each_operator_on_each_mapping_gives_located_problems(folder, mapping, operator, seed):
    assert_located(
        folder / mapping.name, operator(random.Random(seed), mapping.read_text(encoding="utf-8"))
    )


@pytest.mark.parametrize("tag", TAGS)
def test_a_tag_on_a_value_or_a_key_is_a_problem_at_its_line(folder: Path, tag: str) -> None:
    """'!!int abc' and the like: HM108 where it is written (YAML's '!!merge' key: HM110); only
    '!!str' and '!!null' fit any text."""
    text = (MAPPINGS / "quickstart-contacts.yaml").read_text(encoding="utf-8")
    path = folder / "tagged.yaml"
    for old, new in (
        ("id: order_id", f"id: {tag} abc"),
        ("value: 1", f"value: {tag} abc"),
        ("    merge: sum", f"    {tag} merge: sum"),
    ):
        mutant = text.replace(old, new, 1)
        line = mutant[: mutant.index(new)].count("\n") + 1
        assert_located(path, mutant)
        found = {(p.code, p.location.line) for p in check_file(path, deep=True).problems}
        if tag == "!!merge" and new.endswith("merge: sum"):
            assert ("HM110", line) in found
        elif tag in ("!!str", "!!null"):
            assert ("HM108", line) not in found
        else:
            assert ("HM108", line) in found, (new, found)


def test_a_lone_surrogate_escape_in_a_value_or_a_key_is_located_and_printable(folder: Path):
    text = (MAPPINGS / "quickstart-contacts.yaml").read_text(encoding="utf-8")
    mutant = text.replace("id: order_id", 'id: "order\\ud800"', 1).replace(
        "  skus_bought:", '  "skus\\udfff":', 1
    )
    path = folder / "surrogates.yaml"
    assert_located(path, mutant)
    found = [(p.code, p.location.line) for p in check_file(path).problems]
    lines = mutant.splitlines()
    assert ("HM102", lines.index('  id: "order\\ud800"') + 1) in found
    assert ("HM102", lines.index('  "skus\\udfff":') + 1) in found
