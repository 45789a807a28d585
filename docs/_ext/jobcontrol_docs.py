"""Directives that take what the docs state from the code, so it cannot drift.

``.. jobcontrol-exit-codes::`` is the table of :class:`jobcontrol.errors.ExitCode`.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

from jobcontrol.errors import ExitCode


def exit_code_rows() -> list[tuple[int, str, str]]:
    """(code, name, meaning) of every exit code, in order."""
    return [(code.value, code.name, code.meaning) for code in ExitCode]


class ExitCodes(Directive):
    has_content = False

    def run(self) -> list[nodes.Node]:
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        for width in (6, 14, 80):
            group += nodes.colspec(colwidth=width)

        def row(*cells: str, literal: bool = False) -> nodes.row:
            line = nodes.row()
            for i, text in enumerate(cells):
                inline: nodes.Node = nodes.literal(text=text) if literal and i == 1 \
                    else nodes.Text(text)
                line += nodes.entry("", nodes.paragraph("", "", inline))
            return line

        head = nodes.thead()
        head += row("code", "ExitCode", "meaning")
        group += head
        body = nodes.tbody()
        for code, name, meaning in exit_code_rows():
            body += row(str(code), name, meaning, literal=True)
        group += body
        return [table]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("jobcontrol-exit-codes", ExitCodes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
