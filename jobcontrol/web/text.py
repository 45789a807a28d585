"""Text from jobs made fit to show: terminal escape sequences removed, control characters
made visible. Jinja's autoescape then takes care of HTML; this takes care of the terminal."""

from __future__ import annotations

import re

# CSI (colours, cursor moves), OSC (titles, hyperlinks; ended by BEL or ST) and the
# two-character escapes: what a job's coloured output is made of
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 controls but tab and newline, DEL, C1 controls: shown as \xNN rather than acted on
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(value: object) -> str:
    """``value`` as text without ANSI escape sequences; other control characters (a lone
    ESC, a NUL, a carriage return) become visible ``\\xNN``."""
    if value is None:
        return ""
    text = _ANSI.sub("", str(value))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
