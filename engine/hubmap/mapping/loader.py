"""Read a mapping file into plain data plus the file position of every key and value.

PyYAML's constructors drop positions, so the file is composed into nodes and converted here, keeping
for each key path the location of the key and of its value.  The same walk refuses what YAML allows
but a mapping must not have: duplicate keys (PyYAML would keep the last silently), tags other than
those of plain text, numbers, true/false and empty (dates, bytes, Python objects, tags of one's
own), such a tag that does not fit its value ('!!int abc'), numbers of more digits than Python
converts, lone UTF-16 surrogates written as escapes ("\\ud800"), recursive aliases and alias
bombs; each is a located problem, never an exception.
Timestamps stay text (the expressions and the type layer decide what a date means, not YAML), and
keys are the text written ('true:' names 'true').
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubmap.problems import Location, Problem

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 200_000  # far above any real mapping; stops "billion laughs" alias bombs
MAX_DEPTH = 200

JsonPath = tuple[str | int, ...]
_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
# The scalars a mapping holds (what plain YAML values resolve to), in words for messages.
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str": "text",
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:null": "empty",
}


_SURROGATE = re.compile("[\ud800-\udfff]")


class _MappingLoader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type: '2024-05-16' stays a string."""


_MappingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class NodeInfo:
    """Where one value sits in the file."""

    key: Location | None  # the key that names this value (None for list items and the root)
    value: Location  # the first character of the value node
    text_start: Location  # the first character of a scalar's text (after quotes / block header)
    continuation_column: int = 0  # block scalars: the column where their later lines start


@dataclass
class LoadedDocument:
    file: str
    data: Any = None
    positions: dict[JsonPath, NodeInfo] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    def location(self, path: JsonPath, *, prefer_key: bool = False) -> Location:
        """The best location for `path`: the value (or key), else the nearest known ancestor."""
        probe = tuple(path)
        while True:
            info = self.positions.get(probe)
            if info is not None:
                where = info.key if (prefer_key and info.key is not None) else info.value
                return Location(where.file, where.line, where.column, tuple(path))
            if not probe:
                return Location(self.file, 1, 1, tuple(path))
            probe = probe[:-1]

    def key_location(self, path: JsonPath) -> Location:
        return self.location(path, prefer_key=True)


def load_file(path: str | Path, display_name: str | None = None) -> LoadedDocument:
    """Load a mapping file; problems instead of exceptions for anything a user can get wrong."""
    name = display_name or str(path)
    doc = LoadedDocument(file=name)
    file_start = Location(name, 1, 1)
    file_path = Path(path)
    try:
        if file_path.is_dir():
            doc.problems.append(
                Problem(
                    "HM101",
                    f"'{name}' is a folder, not a mapping file",
                    file_start,
                    hint="give a .yaml file, or the folder alone to check every mapping in it",
                )
            )
            return doc
        size = file_path.stat().st_size
        if size > MAX_FILE_BYTES:
            doc.problems.append(
                Problem(
                    "HM107",
                    f"the file is {size:,} bytes; a mapping may be at most "
                    f"{MAX_FILE_BYTES:,} bytes",
                    file_start,
                    hint="move large example inputs into files beside the mapping (input_file)",
                )
            )
            return doc
        raw = file_path.read_bytes()
    except FileNotFoundError:
        doc.problems.append(
            Problem(
                "HM101",
                f"no such file: '{name}'",
                Location(name),
                hint="check the path; folders are searched for *.yaml and *.yml files",
            )
        )
        return doc
    except (OSError, ValueError) as error:  # ValueError: a NUL in the name
        doc.problems.append(
            Problem(
                "HM102",
                f"cannot read the file: {getattr(error, 'strerror', '') or error}",
                Location(name),
                hint="check that the file exists and that you may read it",
            )
        )
        return doc
    return load_bytes(raw, name, doc)


def load_text(text: str, name: str = "<string>") -> LoadedDocument:
    return load_bytes(text.encode("utf-8"), name, LoadedDocument(file=name))


def load_bytes(raw: bytes, name: str, doc: LoadedDocument | None = None) -> LoadedDocument:
    doc = doc or LoadedDocument(file=name)
    file_start = Location(name, 1, 1)
    if b"\x00" in raw:
        doc.problems.append(
            Problem(
                "HM102",
                "the file is binary, not YAML text",
                file_start,
                hint="a mapping is a UTF-8 text file ending in .yaml",
            )
        )
        return doc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        doc.problems.append(
            Problem(
                "HM102",
                "the file is not valid UTF-8 text",
                Location(name, line, column),
                hint="save the file as UTF-8",
            )
        )
        return doc
    try:
        nodes = list(yaml.compose_all(text, Loader=_MappingLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        location = Location.from_mark(name, mark) if mark else file_start
        message = error.problem or str(error)
        if error.context:
            message = f"{message} ({error.context})"
        doc.problems.append(
            Problem(
                "HM103",
                f"YAML syntax error: {message}",
                location,
                hint="check indentation, colons and quotes on this line and the one above",
            )
        )
        return doc
    except yaml.YAMLError as error:  # reader errors (control characters) have no problem_mark
        mark = getattr(error, "position", None)
        location = Location(name, 1, 1)
        if isinstance(mark, int):
            before = text[:mark]
            location = Location(name, before.count("\n") + 1, mark - (before.rfind("\n") + 1) + 1)
        doc.problems.append(
            Problem(
                "HM103",
                f"YAML cannot be read: {error}",
                location,
                hint="remove control characters from the file",
            )
        )
        return doc
    except RecursionError:
        doc.problems.append(
            Problem(
                "HM103",
                "the YAML is nested too deeply",
                _deepest(name, text),
                hint="a mapping needs only a few levels of nesting",
            )
        )
        return doc

    nodes = [n for n in nodes if n is not None]
    if not nodes:
        doc.problems.append(
            Problem(
                "HM104",
                "the file is empty",
                file_start,
                hint="start from a mapping in mappings/ (see README: 'The mapping language')",
            )
        )
        return doc
    if len(nodes) > 1:
        doc.problems.append(
            Problem(
                "HM109",
                "the file holds several YAML documents ('---'); a mapping is one",
                Location.from_mark(name, nodes[1].start_mark),
                hint="put each mapping in its own file",
            )
        )
        return doc
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        doc.problems.append(
            Problem(
                "HM105",
                f"the file holds {kind}; a mapping must be a set of 'key: value' lines",
                Location.from_mark(name, root.start_mark),
                hint="start with 'version: 1', then 'records:', 'target:' and 'properties:'",
            )
        )
        return doc
    converter = _Converter(name, text, doc)
    doc.data = converter.convert(root, (), None)
    return doc


def _deepest(name: str, text: str) -> Location:
    """Where a too deeply nested file goes deepest: the first line that opens more than
    MAX_DEPTH brackets ('[', '{' outside quotes), else the most indented line."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        quote = ""  # an apostrophe in plain text (shop's) opens no quote past its line
        for column, char in enumerate(line, start=1):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return Location(name, number, column)
            elif char in "]}":
                depth -= 1
    lines = text.splitlines() or [""]
    indents = [len(line) - len(line.lstrip(" ")) for line in lines]
    number = indents.index(max(indents)) + 1
    return Location(name, number, indents[number - 1] + 1)


def _escaped(surrogate: re.Match[str]) -> str:
    return f"\\u{ord(surrogate.group()):04x}"  # printable where the character is not


def shortened(text: str, limit: int = 60) -> str:
    """Text as messages quote it: a 5,000-digit number or a pasted file is cut short."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_tag(tag: str) -> str:
    """A tag as it is written: '!!int' for YAML's own, the rest as they are (shortened)."""
    return shortened(tag.replace("tag:yaml.org,2002:", "!!", 1))


class _Converter:
    """Turns composed YAML nodes into JSON-like data, recording positions and problems."""

    def __init__(self, name: str, text: str, doc: LoadedDocument):
        self.name = name
        self.lines = text.splitlines()
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()  # nodes on the current path (recursive aliases)
        self.constructor = _MappingLoader("")
        self.too_big = False

    def convert(self, node: yaml.Node, path: JsonPath, key_location: Location | None) -> Any:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            if not self.too_big:
                self.too_big = True
                self.doc.problems.append(
                    Problem(
                        "HM107",
                        "the YAML expands to too many values (aliases nested too deeply?)",
                        Location.from_mark(self.name, node.start_mark, path),
                        hint="write the values out instead of repeating aliases",
                    )
                )
            return None
        value_location = Location.from_mark(self.name, node.start_mark, path)
        if id(node) in self.active:
            self.doc.problems.append(
                Problem(
                    "HM111",
                    "this alias refers to itself",
                    value_location,
                    hint="a mapping cannot contain itself; write the values out",
                )
            )
            return None
        text_start, continuation = self._text_start(node, value_location)
        self.doc.positions[path] = NodeInfo(key_location, value_location, text_start, continuation)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            self.doc.problems.append(
                Problem(
                    "HM108",
                    f"the tag '{_short_tag(node.tag)}' is not allowed in a mapping",
                    value_location,
                    hint="remove the tag; mappings hold plain text, numbers and true/false",
                )
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.convert(item, path + (index,), None)
                    for index, item in enumerate(node.value)
                ]
            return self._scalar(node, value_location)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Location] = {}
        for key_node, value_node in node.value:
            key_location = Location.from_mark(self.name, key_node.start_mark, path)
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.problems.append(
                    Problem(
                        "HM110",
                        "a key must be a plain word, not a list or a mapping",
                        key_location,
                        hint="write the key as text before the colon",
                    )
                )
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.doc.problems.append(
                    Problem(
                        "HM110",
                        "YAML merge keys ('<<') are not supported in mappings",
                        key_location,
                        hint="write the keys out",
                    )
                )
                continue
            key = key_node.value  # as written: 'true' and '~' are names here, not true and None
            key_location = Location(
                key_location.file,
                key_location.line,
                key_location.column,
                path + (_SURROGATE.sub(_escaped, key),),
            )
            refused = len(self.doc.problems)
            self._scalar(key_node, key_location)  # refuses a tag that does not fit the key
            if len(self.doc.problems) > refused:
                continue
            if key in first_seen:
                first = first_seen[key]
                self.doc.problems.append(
                    Problem(
                        "HM106",
                        f"duplicate key '{key}' (first written on line {first.line})",
                        key_location,
                        hint="YAML keeps only the last one; remove or rename one of them",
                    )
                )
                continue
            first_seen[key] = key_location
            result[key] = self.convert(value_node, path + (key,), key_location)
        return result

    def _scalar(self, node: yaml.ScalarNode, location: Location) -> Any:
        if node.tag not in _SCALAR_TAGS:  # dates, bytes, Python objects, tags of one's own
            self.doc.problems.append(
                Problem(
                    "HM108",
                    f"the tag '{_short_tag(node.tag)}' is not allowed in a mapping",
                    location,
                    hint="remove the tag; mappings hold plain text, numbers and true/false",
                )
            )
            return None
        if _SURROGATE.search(node.value):  # "\ud800": no file, message or portal can hold it
            self.doc.problems.append(
                Problem(
                    "HM102",
                    "this text holds a lone UTF-16 surrogate (an escape such as "
                    "\\ud800 without its pair), which is not a character",
                    location,
                    hint="write the character itself, or its code as one \\U escape (\\U0001F600)",
                )
            )
            return None
        try:
            return self.constructor.construct_object(node, deep=True)
        except ValueError as error:  # 5000 digits: more than int() converts
            if node.tag == "tag:yaml.org,2002:int" and "digits" in str(error):
                self.doc.problems.append(
                    Problem(
                        "HM107",
                        f"this number has {len(node.value):,} characters, more "
                        "than a mapping can use",
                        location,
                        hint="write a shorter number, or quote it to make it text",
                    )
                )
                return None
        except (yaml.YAMLError, ArithmeticError, LookupError, TypeError):
            pass
        # An explicit tag that does not fit its text: '!!int abc', '!!bool maybe'.
        self.doc.problems.append(
            Problem(
                "HM108",
                f"'{shortened(node.value)}' is not {_SCALAR_TAGS[node.tag]}, as its "
                f"tag '{_short_tag(node.tag)}' says",
                location,
                hint=f"remove the tag, so that the value is read as it is written, or "
                f"write {_SCALAR_TAGS[node.tag]}",
            )
        )
        return None

    def _text_start(self, node: yaml.Node, location: Location) -> tuple[Location, int]:
        """Where a scalar's text begins: after an opening quote, or on the line after '|'/'>'."""
        if not isinstance(node, yaml.ScalarNode):
            return location, 0
        style = node.style
        if style in ("'", '"'):
            return location.shifted(1), 0
        if style in ("|", ">"):
            next_line = node.start_mark.line + 1  # 0-based index of the first content line
            while next_line < len(self.lines) and not self.lines[next_line].strip():
                next_line += 1
            if next_line < len(self.lines):
                indent = len(self.lines[next_line]) - len(self.lines[next_line].lstrip(" "))
                return Location(location.file, next_line + 1, indent + 1, location.path), indent + 1
        return location, 0
