"""ANSI colours in log text, for the web: a small parser from SGR sequences to styled runs.

A job's coloured output (``\\x1b[31m...\\x1b[0m``) becomes runs of text, each with CSS
classes (``ansi-fg-1``, ``ansi-bold``); the page escapes every run and wraps it in a
``<span>`` of those classes, so no byte of the log ever becomes markup. Only SGR ("select
graphic rendition", ``ESC [ ... m``) is understood; any other escape sequence is left in the
text, where :func:`jobcontrol.text.visible` shows it as ``\\x1b...`` instead of acting on it.
No Flask here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: an SGR sequence and its parameters
_SGR = re.compile(r"\x1b\[([0-9;]{0,64})m")
#: attributes by SGR code, and the codes that end them
_ATTRIBUTES = {1: "bold", 2: "dim", 3: "italic", 4: "underline"}
_ATTRIBUTE_OFF = {22: ("bold", "dim"), 23: ("italic",), 24: ("underline",)}


@dataclass(frozen=True)
class Run:
    """A stretch of text drawn one way: its classes, space-separated ("" for plain)."""

    text: str
    classes: str


@dataclass
class _Style:
    fg: int | None = None
    bg: int | None = None
    attributes: set[str] = field(default_factory=set)

    def classes(self) -> str:
        names = [f"ansi-{a}" for a in sorted(self.attributes)]
        if self.fg is not None:
            names.append(f"ansi-fg-{self.fg}")
        if self.bg is not None:
            names.append(f"ansi-bg-{self.bg}")
        return " ".join(names)

    def apply(self, params: str) -> None:
        """Change the style by one sequence's parameters (``""`` is a reset)."""
        codes = [int(p) if p else 0 for p in params.split(";")]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.fg, self.bg, self.attributes = None, None, set()
            elif code in _ATTRIBUTES:
                self.attributes.add(_ATTRIBUTES[code])
            elif code in _ATTRIBUTE_OFF:
                self.attributes.difference_update(_ATTRIBUTE_OFF[code])
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = code - 30 if code < 90 else code - 90 + 8
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = code - 40 if code < 100 else code - 100 + 8
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48):
                i += self._extended(code, codes[i + 1:])
            i += 1

    def _extended(self, code: int, rest: list[int]) -> int:
        """``38;5;N`` / ``38;2;R;G;B`` (48 for the background): the 16 basic colours of the
        256 are kept, the rest drawn plain; returns how many parameters it used."""
        if rest[:1] == [5] and len(rest) >= 2:
            colour = rest[1] if rest[1] < 16 else None
            if code == 38:
                self.fg = colour
            else:
                self.bg = colour
            return 2
        if rest[:1] == [2]:
            return min(4, len(rest))
        return len(rest)  # unknown: the rest of the sequence is its


def runs(text: str) -> list[Run]:
    """``text`` split at its SGR sequences into runs with their classes (the sequences
    themselves are dropped); text without any is one plain run."""
    if "\x1b[" not in text:
        return [Run(text, "")]
    style = _Style()
    found: list[Run] = []
    position = 0
    for match in _SGR.finditer(text):
        if match.start() > position:
            found.append(Run(text[position:match.start()], style.classes()))
        style.apply(match.group(1))
        position = match.end()
    if position < len(text):
        found.append(Run(text[position:], style.classes()))
    return found
