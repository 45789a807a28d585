"""The fast path of :func:`jobcontrol.config.loading.load_yaml`: data from libyaml's events.

PyYAML's loader composes a node for every value, resolves its tag, then runs a generator per
collection to construct it; for a config of many jobs that is most of the cost of loading.
Ordinary configs use a small part of YAML: plain mappings, sequences and scalars, ``!retval``
and ``!env``. :func:`load_events` builds the same :class:`MarkedDict`/:class:`MarkedList`
data (same values, types and marks) from libyaml's event stream in one loop, resolving plain
scalars with the loader's own implicit resolvers and constructors.

Whatever it does not handle exactly, it leaves to the slow path by returning None: anchors
and aliases, merge keys, explicit tags other than ``!retval``/``!env``, keys that are not
untagged scalars, duplicate keys, nesting deeper than :data:`MAX_DEPTH`, more than one
document, and any error at all. The slow path then loads the text from its start, so every
message, location and edge case stays its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from jobcontrol.config.yaml_loader import (
    MAX_DEPTH,
    YAML_TAG_PREFIX,
    Document,
    MarkedDict,
    MarkedList,
)

#: False: every load takes the slow path (tests compare the two paths with it)
ENABLED = True
#: how many loads each path served: "events" (this module) and "fallback" (the slow path)
taken = {"events": 0, "fallback": 0}

_STR_TAG = YAML_TAG_PREFIX + "str"
_INT_TAG = YAML_TAG_PREFIX + "int"
#: the tags of plain scalars built here (by the loader's own constructors); a plain scalar
#: resolving to any other (``<<`` is !!merge, ``=`` is !!value) goes to the slow path
_SCALAR_TAGS = tuple(
    YAML_TAG_PREFIX + name for name in ("null", "bool", "int", "float", "timestamp")
)
#: the tagged scalars built here, by the loader's own constructors (as the slow path does)
_TAGS = ("!env", "!retval")
_NO_KEY = object()  # a mapping waiting for its next key
Constructor = Callable[[Any, yaml.Node], Any]


class _Resolver:
    """SafeLoader's implicit resolution of plain scalars, as ``Resolver.resolve`` does it
    with the loader class's own tables (read at each load: nothing kept from an older one),
    and the constructors of the tags it gives."""

    def __init__(self, loader_cls: type[Any]) -> None:
        # {first character: [(tag, regexp)]}; "" for the empty scalar, None for any
        self.table: dict[Any, list[tuple[str, Any]]] = loader_cls.yaml_implicit_resolvers
        self.wildcard = self.table.get(None, [])
        constructors = loader_cls.yaml_constructors
        self.constructors: dict[str, Constructor] = {tag: constructors[tag]
                                                     for tag in _SCALAR_TAGS}
        #: ``!env`` and ``!retval``: the constructors the slow path calls
        self.tagged: dict[str, Constructor] = {tag: constructors[tag] for tag in _TAGS}
        # when the loader's !!int is PyYAML's (guarded) constructor, a plain decimal such as
        # 42 is int(text): made here without building a node for it
        self.plain_ints = (
            yaml.SafeLoader.yaml_constructors.get(_INT_TAG) is SafeConstructor.construct_yaml_int
        )

    def tag(self, text: str) -> str:
        """The tag ``Resolver.resolve(ScalarNode, text, (True, False))`` gives."""
        for tag, regexp in self.table.get(text[0] if text else "", []) + self.wildcard:
            if regexp.match(text):
                return tag
        return _STR_TAG


def _is_decimal(text: str) -> bool:
    """Digits 0-9 only, not starting with 0 (which makes an octal number or 0): what
    ``construct_yaml_int`` turns into ``int(text)``."""
    return text.isdecimal() and text.isascii() and text[0] != "0"


def usable(loader_cls: type[Any]) -> bool:
    """Whether the fast path can serve loads made with ``loader_cls``: libyaml's parser (the
    pure-Python one is for machines without libyaml: their loads all take the slow path)
    and no path resolvers (which would make a tag depend on where a scalar sits)."""
    c_parser = getattr(getattr(yaml, "cyaml", None), "CParser", None)
    return (
        ENABLED
        and c_parser is not None
        and issubclass(loader_cls, c_parser)
        and not loader_cls.yaml_path_resolvers
    )


def load_events(loader_cls: type[Any], text: str, file: str) -> Document | None:
    """``text``'s document as the slow path makes it, or None where this path does not
    handle it exactly (including every error: the slow path reports it)."""
    loader = None
    try:
        loader = loader_cls(text)
        loader.jc_file = file
        document = _build(loader, _Resolver(loader_cls))
    except Exception:  # any error at all is the slow path's to report
        document = None
    finally:
        if loader is not None:
            loader.dispose()
    taken["fallback" if document is None else "events"] += 1
    return document


def _build(loader: Any, resolver: _Resolver) -> Document | None:
    """The document from ``loader``'s events; None at the first thing not handled here."""
    get_event = loader.get_event
    if type(get_event()) is not StreamStartEvent:
        return None
    event = get_event()
    if type(event) is StreamEndEvent:
        return Document(None, None)
    if type(event) is not DocumentStartEvent:
        return None

    resolve_tag = resolver.tag
    constructors = resolver.constructors
    tagged = resolver.tagged
    plain_ints = resolver.plain_ints
    # plain scalars by text, resolved and constructed: each value is immutable
    plain: dict[str, Any] = {}
    plain_get = plain.get
    # a list that takes the root node, as if it were an item
    top = MarkedList()
    container: Any = top
    in_map = False
    key: Any = _NO_KEY
    key_pos = (0, 0)
    stack: list[tuple[Any, bool]] = []  # the enclosing collections

    while True:
        event = get_event()
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None:
                return None
            mark = event.start_mark
            pos = (mark.line + 1, mark.column + 1)
            tag = event.tag
            text = event.value
            if tag is None:
                if not event.implicit[0]:  # quoted or a block scalar: a str
                    value = text
                else:
                    value = plain_get(text, _NO_KEY)
                    if value is _NO_KEY:
                        resolved = resolve_tag(text)
                        if resolved == _STR_TAG:
                            value = text
                        elif resolved == _INT_TAG and plain_ints and _is_decimal(text):
                            value = int(text)
                        else:
                            construct = constructors.get(resolved)
                            if construct is None:
                                return None
                            node = yaml.ScalarNode(resolved, text, mark, event.end_mark)
                            value = construct(loader, node)
                        plain[text] = value
            else:
                construct = tagged.get(tag)
                if construct is None or (in_map and key is _NO_KEY):
                    return None
                node = yaml.ScalarNode(tag, text, mark, event.end_mark, event.style)
                value = construct(loader, node)
            if not in_map:
                container.append(value)
                container.item_marks.append(pos)
            elif key is _NO_KEY:
                if value in container:  # a duplicate: the slow path says where
                    return None
                key = value
                key_pos = pos
            else:
                container[key] = value
                container.key_marks[key] = key_pos
                container.value_marks[key] = pos
                key = _NO_KEY
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                return None
            if in_map and key is _NO_KEY:  # a collection as a key
                return None
            mark = event.start_mark
            pos = (mark.line + 1, mark.column + 1)
            child: Any = MarkedDict() if kind is MappingStartEvent else MarkedList()
            child.start = pos
            if not in_map:
                container.append(child)
                container.item_marks.append(pos)
            else:
                container[key] = child
                container.key_marks[key] = key_pos
                container.value_marks[key] = pos
                key = _NO_KEY
            stack.append((container, in_map))
            # an event loop does not recurse, but the validator does: the same limit as
            # the slow path's (which reports it)
            if len(stack) > MAX_DEPTH:
                return None
            container = child
            in_map = kind is MappingStartEvent
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            container, in_map = stack.pop()
        elif kind is DocumentEndEvent:
            break
        else:  # an alias, or anything unforeseen
            return None

    if type(get_event()) is not StreamEndEvent:  # a second document: the slow path refuses
        return None
    return Document(top[0], top.item_marks[0], loader.jc_env_values, loader.jc_retvals)
