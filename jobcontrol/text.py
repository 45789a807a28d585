"""Text from jobs and configs made fit to show, on a terminal or a web page.

A job's log messages, output, exceptions, return values and a config's titles are shown
as they are, but never acted on: control characters (C0, DEL, C1) and the bidirectional
overrides that hide or reorder text become visible escapes (``\\x1b``, ``\\u202e``), so an
escape sequence shows as text (``\\x1b]52;c;...``) instead of writing the clipboard,
retitling the window or clearing the screen. The one cleaner of the CLI and the web UI.
JSON output keeps the true values: :func:`json_text` escapes the same characters the
JSON way.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: what a terminal acts on or hides text with, besides the C0 controls: DEL, the C1 controls
#: (``\x9b`` is CSI to some terminals), the bidi embeddings, overrides and isolates
_UNSAFE = "\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_UNSAFE}]")
#: the same but tab and newline: the layout of a multi-line field
_CONTROL_BUT_LAYOUT = re.compile(f"[\x00-\x08\x0b-\x1f{_UNSAFE}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, multiline: bool = False) -> str:
    """``value`` as text whose control characters and bidi overrides are shown, not acted
    on. ``multiline`` keeps tabs and newlines (a traceback, a log message); otherwise they
    are shown as ``\\t`` and ``\\n`` too (a title, a table cell). None is empty text."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # no control or format character at all: nothing to do
        return text
    return (_CONTROL_BUT_LAYOUT if multiline else _CONTROL).sub(_escape, text)


#: what JSON leaves raw in a string (it escapes C0 itself)
_JSON_UNSAFE = re.compile(f"[{_UNSAFE}]")


def json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON, exact, with non-ASCII text kept readable but DEL, C1 controls and
    bidi overrides written as ``\\uXXXX`` (``json.dumps`` escapes C0 itself)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` (or an error's message) on one line: runs of whitespace, newlines included,
    become one space; cut with ``...`` to ``limit`` characters when longer."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        return line[: limit - 3] + "..."
    return line
