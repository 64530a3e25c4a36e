"""Problem codes: each one defined once, with its stage and what it means.

A code is `HM` and three digits; the hundreds name the stage that reports it (`STAGES`).  A code
keeps its meaning for good: a new meaning takes a new code, never a used one.  The producers
write the code as a plain string where they report it; tests/unit/test_codes.py checks that each
one written is defined here, that each one defined is written somewhere, that a fixed severity
is the one reported, and that README.md's table of codes says what this module says.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubmap.problems import Severity

STAGES = {
    "1": "read",
    "2": "shape",
    "3": "expression",
    "4": "meaning",
    "5": "record",
    "6": "HubSpot",
    "7": "state",
    "8": "serve",
}
"""The stage of each hundreds: reading a mapping file, the mapping's shape (its JSON Schema), its
expressions, its meaning, one order record (a rejected record), what HubSpot refused or would
refuse, the local state store, and `hubmap serve`'s configuration."""


@dataclass(frozen=True)
class Code:
    id: str
    summary: str  # one line: what went wrong, in the user's words
    # None: it varies (the producer chooses), or the code is a rejected record's, which has none
    severity: Severity | None = Severity.ERROR
    fix: str = ""  # how to fix it, where the summary alone does not say

    @property
    def stage(self) -> str:
        return STAGES[self.id[2]]


_W = Severity.WARNING
_UNFIXED = None  # see Code.severity

CODES: tuple[Code, ...] = (
    # -- read: the mapping file -------------------------------------------------------------
    Code(
        "HM101",
        "no mapping file at the path: no such file, a folder given as a file, "
        "or a folder without `*.yaml` files",
    ),
    Code(
        "HM102",
        "the file cannot be read as UTF-8 text: no access, binary, another encoding, "
        "or a lone surrogate escape",
        fix="save the file as UTF-8; write a character itself, or its code as one \\U escape",
    ),
    Code("HM103", "the YAML does not parse: syntax, control characters, or nesting too deep"),
    Code("HM104", "the file is empty"),
    Code("HM105", "the file holds a list or a single value, not a set of 'key: value' lines"),
    Code("HM106", "a key is written twice in the same section (YAML would keep the last)"),
    Code(
        "HM107",
        "too large: a file over the size limit, aliases that expand to too many values, "
        "or a number of thousands of digits",
    ),
    Code(
        "HM108",
        "a YAML tag hubmap does not read (`!!binary`, `!!python/...`) or one that does not "
        "fit its value (`!!int abc`)",
        fix="remove the tag: mappings hold plain text, numbers and true/false",
    ),
    Code("HM109", "the file holds several YAML documents ('---'); a mapping is one"),
    Code("HM110", "a key that is not plain text (a list or a mapping), or a YAML merge key ('<<')"),
    Code("HM111", "a YAML alias that refers to itself", fix="write the values out"),
    # -- shape: the mapping's JSON Schema ---------------------------------------------------
    Code("HM201", "an unknown key (with the closest known one)"),
    Code("HM202", "a required key is missing"),
    Code("HM203", "a value of the wrong type (text, number, true/false, list, section)"),
    Code("HM204", "a value that is not one of the allowed ones"),
    Code("HM205", "a value in none of the forms its key allows"),
    Code("HM206", "a name that is not lower case letters, digits and underscores"),
    Code("HM207", "a value out of its bounds (too short, too long, too small, too many)"),
    # -- expression: JMESPath and Jinja -----------------------------------------------------
    Code(
        "HM301",
        "a JMESPath expression that does not parse (with the right spelling where it is "
        "another language's)",
    ),
    Code("HM302", "a template that does not parse"),
    Code(
        "HM303",
        "an unknown function or filter, or a function called with the wrong number of arguments",
    ),
    Code(
        "HM304",
        "a template statement the sandbox does not allow (`macro`, `call`, `import`, "
        "`include`, `extends`, `block`, a recursive loop)",
    ),
    Code(
        "HM305",
        "a template whose cost cannot be bounded or that cannot work as written (`**`, a "
        "`{% set %}` in a loop that reads its own name)",
    ),
    Code(
        "HM306",
        "a comparison reads a field no example record has, where a text in single quotes was meant",
        _W,
    ),
    # -- meaning: what the mapping asks for -------------------------------------------------
    Code("HM401", "a merge rule that does not fit the property's type, or a derived one with one"),
    Code("HM402", "a property name HubSpot would refuse"),
    Code(
        "HM403",
        "a property HubSpot computes itself (an error), or one in HubSpot's `hs_` namespace "
        "(a warning)",
        _UNFIXED,
    ),
    Code("HM404", "a rule a form submission cannot honour (a merge other than overwrite, derive)"),
    Code(
        "HM405",
        "a secret written into the mapping (a key named like one, a HubSpot access token)",
        fix="read it from the environment instead",
    ),
    Code(
        "HM406",
        "a property setting that does not fit its type (`options`, `multiple`, `decimals`, "
        "`timezone`, `max_items`), or an enumeration without options or with one twice",
        _UNFIXED,
    ),
    Code("HM407", "a property with no value source or several (from, template, value, derive)"),
    Code(
        "HM408",
        "a time zone that is not known",
        fix="use an IANA name such as Europe/Berlin or America/New_York",
    ),
    Code("HM410", "a '$' in target.portal_id or target.form_guid that is no valid ${NAME}"),
    Code(
        "HM411",
        "an example case that cannot run (its input or input file, the properties it expects)",
    ),
    Code(
        "HM412",
        "an environment variable the mapping's target reads (${NAME}) is not set",
        _UNFIXED,
        fix="export it before running",
    ),
    Code("HM413", "the contact key (email, match_on) written as a property"),
    Code(
        "HM414",
        "refunds that cannot adjust their orders (in a form mapping, without match or in_order, "
        "without order, a value that is no number property read from the order)",
    ),
    Code("HM415", "a catalog file that does not exist or cannot be read"),
    Code("HM416", "a lookup() of a catalog the mapping does not declare"),
    Code("HM417", "a catalog key that gives no row a value"),
    Code(
        "HM418",
        "a let value that is not declared, leads back to itself, or is read where there is "
        "no record",
    ),
    Code("HM419", "a derive expression reads a name that is no property of the mapping"),
    Code(
        "HM420",
        "a parameter's value would change the expressions that read it (quotes, backticks, "
        "backslashes, braces, '$')",
    ),
    Code("HM421", "a ${NAME} or an example's params: names no declared parameter"),
    # -- record: one order, rejected with its reason ----------------------------------------
    Code(
        "HM501", "an expression failed on this record, or passed its time or size bound", _UNFIXED
    ),
    Code("HM502", "a piece of the input that cannot be read as a record", _UNFIXED),
    Code(
        "HM503",
        "the record lacks what the mapping reads (id, time, version, group key, the refund's "
        "order) or is not an object",
        _UNFIXED,
    ),
    Code("HM504", "a value that cannot be typed as its property (or the order's time)", _UNFIXED),
    Code("HM505", "no contact key, or one HubSpot would refuse or file wrongly", _UNFIXED),
    Code("HM506", "a required property has no value", _UNFIXED),
    Code("HM507", "the record fails one of the mapping's records.require conditions", _UNFIXED),
    Code(
        "HM508",
        "rows of a grouped (CSV) order that came after the order was read: not counted, "
        "not replayed",
        _UNFIXED,
        fix="put the rows of one order together and run the file again",
    ),
    Code(
        "HM509",
        "hubmap could not evaluate the record (a fault of hubmap: please report it)",
        _UNFIXED,
    ),
    # -- HubSpot ----------------------------------------------------------------------------
    Code("HM600", "HubSpot answered a call with an error"),
    Code("HM601", "a property exists in HubSpot with another type"),
    Code("HM602", "the property contacts are matched on does not keep unique values in HubSpot"),
    Code("HM603", "a property does not exist in the portal yet (run or apply creates it)", _W),
    Code(
        "HM604", "an enumeration in the portal lacks options the mapping uses (apply adds them)", _W
    ),
    Code("HM605", "HubSpot refused to create a property"),
    Code(
        "HM606",
        "the form would refuse the mapping's submissions: no such form, fields it lacks, "
        "required fields left unfilled (a warning where only some orders leave one out)",
        _UNFIXED,
    ),
    Code("HM607", "HubSpot refused a form submission (kept with its reason for replay)", _UNFIXED),
    # -- state: the local store -------------------------------------------------------------
    Code(
        "HM701",
        "how orders and contacts are identified changed since orders were counted",
        fix="run once with --rebuild and the full order history, or undo the change",
    ),
    Code(
        "HM702",
        "a property changed its merge rule or type since its totals were counted",
        fix="run once with --rebuild and the full order history, or give it a new name",
    ),
    Code(
        "HM703",
        "the stored counts cannot be continued (an unfinished rebuild, a state of hubmap 0.1)",
        fix="run once with --rebuild and the full order history",
    ),
    Code("HM704", "a rebuild cannot be a dry run"),
    Code(
        "HM708",
        "a contact's fence was not written by this state file (another state or mapping, or "
        "cleared): nothing is written",
    ),
    # -- serve: the webhook server's configuration ------------------------------------------
    Code("HM802", "an unknown key in the serve configuration"),
    Code("HM803", "a serve setting with a wrong value (in its file or on the command line)"),
    Code("HM804", "a serve setting that is needed is missing (routes, auth, secret_env, mappings)"),
    Code("HM805", "the environment variable that holds a route's secret is not set"),
    Code("HM806", "a served mapping joins rows with records.group_by (a webhook is whole orders)"),
    Code("HM807", "two served mappings have the same name"),
)

_BY_ID = {code.id: code for code in CODES}


def lookup(code_id: str) -> Code:
    """The code `code_id` (KeyError when it is not defined)."""
    return _BY_ID[code_id]
