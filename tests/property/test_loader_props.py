"""Property tests: whatever text a person feeds `hubmap validate`, the answer is a list of located
problems, never another exception."""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hubmap.mapping import check_document
from hubmap.mapping.loader import load_bytes, load_text
from tests.conftest import CASES

VALID = (CASES / "validate" / "positive" / "every-feature.yaml").read_text()
VALID_LINES = VALID.splitlines(keepends=True)
YAMLISH = st.text(alphabet=string.printable + "äø€\u2028", max_size=300)


def _yaml_lines(text: str) -> int:
    """How many lines YAML sees: it also breaks lines at a lone CR, NEL and U+2028/9."""
    return len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))


def _assert_located(problems, lines: int) -> None:
    for problem in problems:
        assert problem.code.startswith("HM")
        assert problem.message
        assert 1 <= problem.location.line <= max(lines, 1) + 1
        assert problem.location.column >= 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
@example("\r\r0")  # a lone CR is a line break to YAML
def test_any_text_gives_problems_not_exceptions(text):
    checked = check_document(load_text(text, "any.yaml"))
    _assert_located(checked.problems, _yaml_lines(text))
    if checked.mapping is None:
        assert checked.problems


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_bytes_give_problems_not_exceptions(raw):
    checked = check_document(load_bytes(raw, "any.yaml"))
    _assert_located(checked.problems, _yaml_lines(raw.decode("utf-8", "replace")))


@st.composite
def mutated_mapping(draw):
    """A valid mapping with one line replaced, deleted, duplicated or re-indented."""
    lines = list(VALID_LINES)
    index = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["replace", "delete", "duplicate", "indent", "dedent"]))
    if action == "replace":
        lines[index] = draw(YAMLISH.map(lambda t: t.replace("\n", " ") + "\n"))
    elif action == "delete":
        del lines[index]
    elif action == "duplicate":
        lines.insert(index, lines[index])
    elif action == "indent":
        lines[index] = "  " + lines[index]
    else:
        lines[index] = lines[index][2:] if lines[index].startswith("  ") else lines[index]
    return "".join(lines)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_mapping())
def test_mutations_of_a_valid_mapping_are_located(text):
    checked = check_document(load_text(text, "mutated.yaml"))
    _assert_located(checked.problems, _yaml_lines(text))
