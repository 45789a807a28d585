"""``one_line``: the one helper that puts a message on one line (runner reasons, errors)."""

from __future__ import annotations

from jobcontrol.text import one_line


def test_one_line_joins_whitespace_and_cuts_at_the_limit() -> None:
    assert one_line("a\n  b\tc\r\n") == "a b c"
    assert one_line(ValueError("no\nluck")) == "no luck"
    assert one_line("x" * 10, limit=10) == "x" * 10
    assert one_line("x" * 11, limit=10) == "x" * 7 + "..."
