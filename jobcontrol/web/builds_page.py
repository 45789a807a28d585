"""The Builds page: every job's builds, newest first, filtered by state, job, tag, time and
text, with page numbers and the total; "recent failures" is this page filtered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request, url_for

from jobcontrol.models import TEXT_WINDOW, BuildState
from jobcontrol.web.filters import FAILURES, WINDOWS, build_filters
from jobcontrol.web.helpers import current_jc

bp = Blueprint("builds", __name__)

#: page numbers shown either side of the current one
PAGES_AROUND = 3


def page_numbers(page: int, pages: int) -> list[int | None]:
    """The page links to show: the first, the last and those near ``page``; None: a gap."""
    wanted = {1, pages, *range(page - PAGES_AROUND, page + PAGES_AROUND + 1)}
    shown: list[int | None] = []
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if shown and shown[-1] is not None and number > shown[-1] + 1:
            shown.append(None)
        shown.append(number)
    return shown


@bp.get("/builds")
def index() -> Any:
    jc = current_jc()
    filters = build_filters()
    builds, total = jc.search_builds(filters.query, limit=filters.limit,
                                     offset=filters.offset)
    pages = max(1, -(-total // filters.limit))
    args: dict[str, Any] = request.args.to_dict(flat=False)
    args.pop("page", None)

    def page_url(number: int) -> str:
        return url_for("builds.index", **args, page=number)

    states = {s.value for s in filters.query.states or ()}
    return render_template(
        "builds.html", builds=builds, total=total, filters=filters, pages=pages,
        page_links=page_numbers(filters.page, pages), page_url=page_url,
        all_states=[s.value for s in BuildState], states=states,
        jobs=sorted(jc.config.jobs), tags=sorted({t for j in jc.config.jobs.values()
                                                   for t in j.tags}),
        windows=WINDOWS, failures=[s.value for s in FAILURES], text_window=TEXT_WINDOW,
        first=filters.offset + 1 if builds else 0, last=filters.offset + len(builds),
    )
