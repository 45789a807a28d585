"""The config's YAML: a safe loader with ``!retval`` and ``!env``, marks on every container.

:func:`load_nodes` turns rendered text into plain data whose mappings and sequences remember
where each key, value and item is written (:class:`MarkedDict`, :class:`MarkedList`), so the
validator can point at the offending place. Every way the text can be wrong, including the
values PyYAML's own constructors choke on (``!!int abc``, ``2024-13-45``), is a
:class:`ConfigError` at the node at fault; nothing else escapes.

With libyaml, a document of plain mappings, sequences, scalars, ``!retval`` and ``!env`` is
built straight from the parser's events (:mod:`jobcontrol.config.events`, several times
faster, tried first by :func:`jobcontrol.config.loading.load_yaml`); anything else, every
error included, is loaded here by PyYAML's composer and the constructors below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from jobcontrol.config.model import Location, RetvalRef
from jobcontrol.errors import ConfigError
from jobcontrol.text import one_line

YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_MERGE_TAG = YAML_TAG_PREFIX + "merge"
#: what an environment variable's name may hold (POSIX forbids only '=' and NUL)
ENV_NAME_RE = re.compile(r"[^\s=\x00]+\Z")
#: deepest nesting of collections allowed (libyaml's composer recurses in C: far deeper
#: nesting overflows its stack and kills the process)
MAX_DEPTH = 200
#: most values the aliases of a document may stand for, counted expanded (an alias of a
#: list of 10 values counts 11): aliases are shared when loaded, but validation, the
#: stored definition and its JSON expand them, so nested ones ("billion laughs") could
#: make a small file take gigabytes. Generous: 10,000 jobs each merging 20 defaults
#: (``<<: *defaults``) stand for 210,000
MAX_ALIAS_VALUES = 250_000
_BLOCK_PREFIX = re.compile(r"^[ \t?-]*", re.MULTILINE)
#: a flow collection holding nothing that could hide or fake a bracket (no brackets, quotes,
#: comment, tag or line break): a real one is a whole collection (see _flow_depth_bound)
_LEAF_FLOW = re.compile(r"\{[^\[\]{}'\"#!\n]*\}|\[[^\[\]{}'\"#!\n]*\]")
#: rounds of _LEAF_FLOW removal tried before the exact (parsing) depth check
_LEAF_ROUNDS = 8
#: what PyYAML's scalar constructors make, named for messages about a value they refuse
_SCALAR_KINDS = {
    "null": "null",
    "bool": "boolean",
    "int": "integer",
    "float": "number",
    "binary": "binary value",
    "timestamp": "date",
    "str": "string",
}

Pos = tuple[int, int]  # (line, column), 1-based


class MarkedDict(dict):
    """A YAML mapping that remembers where its keys and values are written."""

    start: Pos = (1, 1)

    def __init__(self) -> None:  # empty, as dict.__new__ made it: no dict.__init__ to call
        self.key_marks: dict[Any, Pos] = {}
        self.value_marks: dict[Any, Pos] = {}


class MarkedList(list):
    """A YAML sequence that remembers where its items are written."""

    start: Pos = (1, 1)

    def __init__(self) -> None:  # empty, as list.__new__ made it
        self.item_marks: list[Pos] = []


@dataclass
class Document:
    """A loaded YAML document: its data, where its root starts, the values read by ``!env``,
    and whether ``!retval`` made any :class:`RetvalRef` in it (False: none anywhere, and the
    validator need not look for one)."""

    data: Any
    root: Pos | None
    env_values: set[str] = field(default_factory=set)
    retvals: bool = True


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


def show_tag(tag: str) -> str:
    return "!!" + tag[len(YAML_TAG_PREFIX) :] if tag.startswith(YAML_TAG_PREFIX) else tag


def _shown(text: str, limit: int = 40) -> str:
    """``repr(text)``, shortened: messages quote values, and a value may be huge."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


@lru_cache(maxsize=1)
def loader_class() -> type[Any]:
    """A safe loader with ``!retval``, ``!env``, duplicate-key checks and marks.

    libyaml's loader is used when present and it reports marks (it is several times faster).
    """
    base: type[Any] = yaml.SafeLoader
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is not None:
        probe = c_loader("a:\n  - b\n")
        try:
            node = probe.get_single_node()
            if getattr(node.value[0][1].start_mark, "line", None) == 1:
                base = c_loader
        except Exception:  # a broken libyaml: keep the pure-Python loader
            pass
        finally:
            probe.dispose()

    class Loader(base):
        jc_file = "<config>"

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.jc_env_values: set[str] = set()
            self.jc_retvals = False  # whether _construct_retval made a RetvalRef

        def at(self, node: Any) -> Location:
            line, column = _pos(node.start_mark)
            return Location(self.jc_file, line, column)

        def construct_undefined(self, node: Any) -> Any:
            # everything SafeLoader cannot build (e.g. !!python/object/apply) stops here
            raise self.at(node).error(
                f"tag {show_tag(node.tag)} is not allowed: only plain YAML, !retval and !env"
            )

    Loader.add_constructor(None, Loader.construct_undefined)
    for name, kind in _SCALAR_KINDS.items():
        tag = YAML_TAG_PREFIX + name
        Loader.add_constructor(tag, _guarded(yaml.SafeLoader.yaml_constructors[tag], kind))
    Loader.add_constructor(YAML_TAG_PREFIX + "map", _construct_map)
    Loader.add_constructor(YAML_TAG_PREFIX + "seq", _construct_seq)
    Loader.add_constructor("!retval", _construct_retval)
    Loader.add_constructor("!env", _construct_env)
    return Loader


def _guarded(construct: Callable[[Any, Any], Any], kind: str) -> Callable[[Any, Any], Any]:
    """PyYAML's scalar constructor, its bare errors on odd values turned into ConfigErrors."""

    def guarded(loader: Any, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # e.g. `!!int abc`, `!!float ''`, 2024-13-45, `0x_`: PyYAML fails on them without
            # a mark
            value = node.value if isinstance(node.value, str) else ""
            detail = ""
            if kind == "date" and isinstance(exc, ValueError):  # "month must be in 1..12"
                detail = f" ({one_line(str(exc))})"
            raise loader.at(node).error(f"invalid {kind} {_shown(value)}{detail}") from None

    return guarded


def _kind(node: yaml.Node) -> str:
    """What a node is, as PyYAML names it (``scalar``, ``sequence``, ``mapping``)."""
    return str(getattr(node, "id", "node"))


def _construct_map(loader: Any, node: yaml.Node) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.start = _pos(node.start_mark)
    if not isinstance(node, yaml.MappingNode):  # `!!map text`
        raise loader.at(node).error(f"tag !!map needs a mapping, got a {_kind(node)}")
    yield data  # filled afterwards, so recursive (anchored) structures work
    if any(key_node.tag == _MERGE_TAG for key_node, _ in node.value):
        _check_keys(loader, [(k, v) for k, v in node.value if k.tag != _MERGE_TAG])
        loader.flatten_mapping(node)  # `<<: *anchor` merges; own keys come last and win
    else:  # the usual case: checked while filled, in one pass
        _check_keys(loader, node.value, data)
        return
    construct = loader.construct_object
    for key_node, value_node in node.value:
        key = construct(key_node, deep=False)
        data[key] = construct(value_node, deep=False)
        data.key_marks[key] = _pos(key_node.start_mark)
        data.value_marks[key] = _pos(value_node.start_mark)


def _check_keys(loader: Any, pairs: list[tuple[yaml.Node, yaml.Node]],
                fill: MarkedDict | None = None) -> None:
    """Refuse unhashable and duplicate keys among ``pairs``; with ``fill``, also store the
    pairs in it (with their marks) as they are checked."""
    construct = loader.construct_object
    first_at: dict[Any, int] = {}
    for key_node, value_node in pairs:
        key = construct(key_node, deep=False)
        try:
            seen = first_at.get(key)
        except TypeError:
            raise loader.at(key_node).error("a mapping key must be a plain value") from None
        if seen is not None:
            raise loader.at(key_node).error(f"duplicate key {key!r} (first at line {seen})")
        key_mark = key_node.start_mark
        first_at[key] = key_mark.line + 1
        if fill is not None:
            fill[key] = construct(value_node, deep=False)
            fill.key_marks[key] = (key_mark.line + 1, key_mark.column + 1)
            fill.value_marks[key] = _pos(value_node.start_mark)


def _construct_seq(loader: Any, node: yaml.Node) -> Iterator[MarkedList]:
    data = MarkedList()
    data.start = _pos(node.start_mark)
    if not isinstance(node, yaml.SequenceNode):  # `!!seq text`
        raise loader.at(node).error(f"tag !!seq needs a sequence, got a {_kind(node)}")
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=False))
        data.item_marks.append(_pos(child.start_mark))


def _construct_retval(loader: Any, node: yaml.Node) -> RetvalRef:
    value = node.value.strip() if isinstance(node, yaml.ScalarNode) else ""
    if not value:
        got = "an empty value" if isinstance(node, yaml.ScalarNode) else f"a {_kind(node)}"
        raise loader.at(node).error(
            f"!retval takes the id of a dependency (e.g. `!retval fetch_prices`), got {got}"
        )
    loader.jc_retvals = True
    return RetvalRef(value, loader.at(node))


def _construct_env(loader: Any, node: yaml.Node) -> str:
    """`!env NAME`: the environment variable NAME, now; a secret (see jobcontrol.secrets)."""
    name = node.value.strip() if isinstance(node, yaml.ScalarNode) else ""
    if not ENV_NAME_RE.match(name):
        if not isinstance(node, yaml.ScalarNode):
            got = f"a {_kind(node)}"
        else:
            got = _shown(name) if name else "an empty value"
        raise loader.at(node).error(
            f"!env takes the name of an environment variable (e.g. `!env DB_PASSWORD`), "
            f"got {got}"
        )
    value = os.environ.get(name)
    if value is None:
        raise loader.at(node).error(f"environment variable {name} is not set")
    loader.jc_env_values.add(value)
    return value


def load_nodes(loader_cls: type[Any], text: str, file: str) -> Document:
    """The document in ``text`` (see :func:`jobcontrol.config.loading.load_yaml`), by PyYAML's
    composer and constructors: every YAML feature, every error located."""
    loader = None
    try:
        loader = loader_cls(text)  # the pure-Python reader checks characters right here
        loader.jc_file = file
        _check_depth(text, file)
        _check_aliases(text, file)
        node = loader.get_single_node()
        if node is None:
            return Document(None, None)
        data = loader.construct_document(node)
        return Document(data, _pos(node.start_mark), loader.jc_env_values, loader.jc_retvals)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from None
    except UnicodeEncodeError as exc:  # libyaml takes UTF-8: a lone surrogate cannot be
        line, column = _line_column(text, exc.start)
        raise ConfigError(
            f"invalid YAML: character U+{ord(text[exc.start]):04X} is not allowed",
            file,
            line,
            column,
        ) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file) from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_depth(text: str, file: str) -> None:
    """A ConfigError if collections nest more than MAX_DEPTH deep.

    A block collection sits deeper than its parent's (every second level at least), and a
    flow one opens with a bracket: when those bounds allow no deep nesting, nothing is parsed.
    """
    indent = max((len(m) for m in _BLOCK_PREFIX.findall(text)), default=0)
    if 2 * (indent + 1) + _flow_depth_bound(text, MAX_DEPTH - 2 * (indent + 1)) <= MAX_DEPTH:
        return
    scanner = loader_class()(text)
    try:
        depth = 0
        while (event := scanner.get_event()) is not None:
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(
                        f"invalid YAML: collections nested more than {MAX_DEPTH} deep",
                        file,
                        *_pos(event.start_mark),
                    )
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        scanner.dispose()


def _check_aliases(text: str, file: str) -> None:
    """A ConfigError, at the alias that crosses it, when the document's aliases stand for
    more than MAX_ALIAS_VALUES values, expanded. One pass over the parser's events, before
    anything is built: each anchored value's expanded size is known when it ends, and an
    alias adds its anchor's size (an alias inside its own anchor counts 1: the validator
    refuses it as recursive)."""
    if "&" not in text or "*" not in text:  # no anchor or no alias: nothing to expand
        return
    scanner = loader_class()(text)
    try:
        sizes: dict[str, int] = {}  # anchor -> the values it stands for, expanded
        count = 0  # values so far, aliases expanded
        through_aliases = 0
        open_anchors: list[tuple[str | None, int]] = []  # collections open: anchor, count
        while (event := scanner.get_event()) is not None:
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(event.anchor or "", 1)  # unknown: the composer says why
                count += size
                through_aliases += size
                if through_aliases > MAX_ALIAS_VALUES:
                    raise ConfigError(
                        f"invalid YAML: aliases stand for more than {MAX_ALIAS_VALUES:,} "
                        f"values (nested aliases expand exponentially)",
                        file,
                        *_pos(event.start_mark),
                    )
            elif isinstance(event, yaml.ScalarEvent):
                count += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_anchors.append((event.anchor, count))
                count += 1
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, before = open_anchors.pop()
                if anchor is not None:
                    sizes[anchor] = count - before
    finally:
        scanner.dispose()


def _flow_depth_bound(text: str, enough: int) -> int:
    """An upper bound of how deep flow collections nest in ``text``, exact enough to be
    at most ``enough`` for ordinary files (else a number above it).

    Every ``[`` or ``{`` might open a collection, so their count is a bound. Tighter: a
    bracket pair on one line with nothing between that could hide or fake a bracket
    (:data:`_LEAF_FLOW`), if real, is a whole collection nesting nothing; removing such
    pairs round after round, the removed ones nest at most as deep as the rounds taken,
    and the brackets left bound the rest. A config of 1000 ``{n: 1}`` takes one round.
    """
    opens = text.count("[") + text.count("{")
    rounds = 0
    while opens + rounds > enough and rounds < _LEAF_ROUNDS:
        text, removed = _LEAF_FLOW.subn("", text)
        if not removed:
            break
        rounds += 1
        opens = text.count("[") + text.count("{")
    return opens + rounds


def _line_column(text: str, position: int) -> Pos:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> ConfigError:
    """One clean line from any PyYAML error, at its problem mark."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        message = one_line(exc.problem or "invalid YAML")
        context, context_mark = exc.context, exc.context_mark
        if context and message.startswith("but "):  # "expected X" + "but found Y"
            message = f"{one_line(context)}, {message}"
        elif context and context_mark is not None and context_mark.line != mark.line:
            message += f" ({one_line(context)} started at line {context_mark.line + 1})"
        lines = text.splitlines()
        if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
            message += " (YAML cannot be indented with tabs: use spaces)"
        return ConfigError(f"invalid YAML: {message}", file, mark.line + 1, mark.column + 1)
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _line_column(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigError(
            f"invalid YAML: character U+{code:04X} is not allowed ({exc.reason})",
            file,
            line,
            column,
        )
    return ConfigError(f"invalid YAML: {one_line(str(exc))}", file)
