"""The web UI's looks, computed without a browser: ANSI colours to classes, the contrast of
every colour pair the stylesheet uses (WCAG AA, light and dark), the graph drawing (edges
never across a node, the current job marked), times rendered in UTC."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask

from jobcontrol.web.ansi import Run, runs
from jobcontrol.web.app import _init_templates
from jobcontrol.web.present import NODE_HEIGHT, NODE_WIDTH, layered_layout

CSS = (Path(__file__).parent.parent / "jobcontrol" / "web" / "static" / "style.css").read_text()

# -- ANSI ------------------------------------------------------------------------------------


def test_plain_text_is_one_plain_run() -> None:
    assert runs("no colour <b>here</b>") == [Run("no colour <b>here</b>", "")]


def test_sgr_sequences_become_classes_and_disappear() -> None:
    text = "\x1b[1;31mERROR\x1b[0m: \x1b[32mok\x1b[39m plain \x1b[44;97mbox\x1b[m end"
    assert runs(text) == [
        Run("ERROR", "ansi-bold ansi-fg-1"), Run(": ", ""), Run("ok", "ansi-fg-2"),
        Run(" plain ", ""), Run("box", "ansi-fg-15 ansi-bg-4"), Run(" end", ""),
    ]


def test_attributes_end_one_by_one_and_bright_colours_map_past_seven() -> None:
    assert runs("\x1b[1;4mA\x1b[22mB\x1b[24mC\x1b[91mD") == [
        Run("A", "ansi-bold ansi-underline"), Run("B", "ansi-underline"), Run("C", ""),
        Run("D", "ansi-fg-9"),
    ]


def test_256_and_true_colour_are_consumed_not_misread() -> None:
    # 38;5;1 is red (one of the 16); 38;5;200 and 38;2;... are drawn plain, and their
    # numbers (1, 4) are never read as bold or underline
    assert runs("\x1b[38;5;1mA\x1b[38;5;200mB\x1b[38;2;1;4;5mC\x1b[48;5;4mD") == [
        Run("A", "ansi-fg-1"), Run("B", ""), Run("C", ""), Run("D", "ansi-bg-4"),
    ]


def test_other_escape_sequences_stay_in_the_text() -> None:
    # a title change is no SGR: left for the page to show as \x1b (never acted on)
    assert runs("\x1b]0;title\x07\x1b[2Jx") == [Run("\x1b]0;title\x07\x1b[2Jx", "")]


# -- contrast --------------------------------------------------------------------------------


def _variables(block: str) -> dict[str, str]:
    """The colour variables of a block, as #rrggbb (#fff written out)."""
    found = re.findall(r"--([\w-]+):\s*#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", block)
    return {name: "#" + (value if len(value) == 6 else "".join(c * 2 for c in value))
            for name, value in found}


def palettes() -> dict[str, dict[str, str]]:
    """The light variables (the first ``:root``), and the dark ones laid over them."""
    light = _variables(CSS[CSS.index(":root"):CSS.index("}", CSS.index(":root"))])
    dark_start = CSS.index("@media (prefers-color-scheme: dark)")
    dark_root = CSS.index(":root", dark_start)
    dark = {**light, **_variables(CSS[dark_root:CSS.index("}", dark_root)])}
    return {"light": light, "dark": dark}


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


#: (text, background) pairs the stylesheet draws
TEXT_PAIRS = [
    *[("badge-fg", state) for state in ("ok", "skip", "fail", "run", "cancel", "abandon",
                                        "none")],
    *[(text, background) for text in ("fg", "muted", "link", "error", "good", "paused-fg")
      for background in ("bg", "panel", "head")],
    *[(text, "warn-row") for text in ("fg", "muted", "link")],
    *[(text, "error-row") for text in ("fg", "muted", "link")],
    ("fg", "flash"), ("link", "flash"), ("top-fg", "top"), ("top-muted", "top"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_colour_meets_wcag_aa(scheme: str) -> None:
    colours = palettes()[scheme]
    failures = [f"--{text} on --{background}: {contrast(colours[text], colours[background]):.2f}"
                for text, background in TEXT_PAIRS
                if contrast(colours[text], colours[background]) < 4.5]
    assert not failures, failures


def test_the_contrast_formula_is_wcags() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#2b8a3e", "#ffffff") == pytest.approx(4.37, abs=0.01)  # the old green


def test_the_dark_palette_is_dark() -> None:
    dark = palettes()["dark"]
    assert luminance(dark["bg"]) < 0.02 and luminance(dark["fg"]) > 0.7


# -- the graph -------------------------------------------------------------------------------


def _points(path: str, samples: int = 24) -> list[tuple[float, float]]:
    """Points along an SVG path of M, L and C commands (what the layout draws)."""
    tokens = re.findall(r"[MLC]|-?\d+(?:\.\d+)?", path)
    points: list[tuple[float, float]] = []
    position = (0.0, 0.0)
    i = 0
    while i < len(tokens):
        command = tokens[i]
        if command in ("M", "L"):
            target = (float(tokens[i + 1]), float(tokens[i + 2]))
            if command == "L":
                points += [(position[0] + (target[0] - position[0]) * t / samples,
                            position[1] + (target[1] - position[1]) * t / samples)
                           for t in range(samples + 1)]
            position, i = target, i + 3
        else:
            c1, c2, end = ((float(tokens[i + k]), float(tokens[i + k + 1])) for k in (1, 3, 5))
            for step in range(samples + 1):
                t = step / samples
                points.append(tuple(  # type: ignore[arg-type]
                    (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2
                    + t ** 3 * p3 for p0, p1, p2, p3 in zip(position, c1, c2, end,
                                                              strict=True)))
            position, i = end, i + 7
    return points


def test_edges_never_cross_a_node() -> None:
    # a wide, deep graph: edges that skip columns full of nodes
    dependencies: dict[str, tuple[str, ...]] = {"root": ()}
    for n in range(6):
        dependencies[f"a{n}"] = ("root",)
        dependencies[f"b{n}"] = (f"a{n}",)
        dependencies[f"c{n}"] = (f"b{n}",)
    dependencies["sink"] = ("root", "c0", "c5", "a3")
    dependencies["mid"] = ("root", "b2")
    drawing = layered_layout(dependencies)
    assert len(drawing.edges) == sum(len(d) for d in dependencies.values())
    crossings = []
    for edge in drawing.edges:
        for x, y in _points(edge.path):
            for node in drawing.nodes:
                if node.x + 1 < x < node.x + NODE_WIDTH - 1 and \
                        node.y + 1 < y < node.y + NODE_HEIGHT - 1:
                    crossings.append((edge.path, node.job_id))
    assert not crossings, crossings[:3]
    for node in drawing.nodes:  # and everything inside the drawing
        assert node.x + NODE_WIDTH <= drawing.width and node.y + NODE_HEIGHT <= drawing.height
    for edge in drawing.edges:
        assert all(0 <= y <= drawing.height for _, y in _points(edge.path))


def test_the_current_job_is_marked() -> None:
    drawing = layered_layout({"a": (), "b": ("a",)}, {"a": "state-success"}, current="b")
    assert {n.job_id: n.css for n in drawing.nodes} == {"a": "state-success", "b": "current"}


# -- times -----------------------------------------------------------------------------------


def test_times_render_in_utc_for_the_script_to_localise() -> None:
    app = Flask(__name__)
    _init_templates(app)
    when = app.jinja_env.filters["when"]
    berlin = datetime(2026, 3, 1, 13, 5, 9, 500, tzinfo=timezone(timedelta(hours=1)))
    assert str(when(berlin)) == \
        '<time class="when" datetime="2026-03-01T12:05:09Z">2026-03-01 12:05:09</time>'
    assert str(when(None)) == ""
