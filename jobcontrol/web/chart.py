"""The job page's chart of its recent builds: one bar a build, oldest on the left, as tall as
the build took (to the longest shown), coloured by its state; an inline SVG drawn here, so the
page shows it without JavaScript. No Flask here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from jobcontrol.models import BuildStub
from jobcontrol.timeutil import format_duration

#: builds the chart shows
CHART_BUILDS = 50
BAR, GAP, HEIGHT, AXIS = 12, 3, 90, 14
#: the shortest bar drawn, in pixels: a build of no time (skipped, queued) still shows
MIN_BAR = 3


def _seconds(stub: BuildStub, now: datetime) -> float | None:
    """How long the build took (so far, while it runs); None if it never started."""
    if stub.started is None:
        return None
    return max(0.0, ((stub.finished or now) - stub.started).total_seconds())


def duration_chart(stubs: Sequence[BuildStub], build_url: str, now: datetime) -> Markup:
    """``stubs`` (oldest first) as bars linking to ``build_url`` + the id, each titled with
    its id, state, duration and start (UTC); empty Markup when there are no builds."""
    if not stubs:
        return Markup("")
    seconds = [_seconds(s, now) for s in stubs]
    longest = max((s for s in seconds if s is not None), default=0.0) or 1.0
    width = max(160, len(stubs) * (BAR + GAP) + GAP)  # room for the label
    bars = []
    for index, (stub, took) in enumerate(zip(stubs, seconds, strict=True)):
        height = MIN_BAR if took is None else max(MIN_BAR, round(took / longest * HEIGHT))
        x, y = GAP + index * (BAR + GAP), HEIGHT - height
        took_text = "not started" if took is None else format_duration(took)
        started = (stub.started.strftime(", started %Y-%m-%d %H:%M:%S UTC")
                   if stub.started else "")
        title = f"#{stub.id} {stub.state.value}, {took_text}{started}"
        bars.append(
            f'<a href="{escape(build_url)}{stub.id}"><rect class="bar state-{stub.state.value}" '
            f'x="{x}" y="{y}" width="{BAR}" height="{height}" data-build="{stub.id}" '
            f'data-state="{stub.state.value}"><title>{escape(title)}</title></rect></a>')
    label = escape(f"longest {format_duration(longest)}")
    # a group, not an image: an image's children (its links to the builds) are hidden from
    # screen readers
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{HEIGHT + AXIS}" viewBox="0 0 {width} {HEIGHT + AXIS}" role="group" '
        f'aria-label="durations of the last {len(stubs)} builds, oldest first">'
        f'<line class="axis" x1="0" y1="{HEIGHT + 0.5}" x2="{width}" y2="{HEIGHT + 0.5}"/>'
        f'{"".join(bars)}'
        f'<text class="axis-label" x="{GAP}" y="{HEIGHT + AXIS - 2}">oldest · {label}</text>'
        f'</svg>')
