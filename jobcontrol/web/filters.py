"""The Builds page's and ``GET /api/v1/builds``' filters, read from the query string the same
way for both: ``job``, ``tag``, ``state`` (repeated), ``since``, ``until``, ``q``, ``page``,
``limit``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import request

from jobcontrol.models import BuildQuery, BuildState
from jobcontrol.timeutil import parse_time_or_age
from jobcontrol.web.helpers import MAX_LIMIT, BadParameter, current_jc, int_arg, states_arg

#: the windows the page offers (any other is accepted from the address bar)
WINDOWS = [("", "any time"), ("1h", "last hour"), ("24h", "last 24 hours"),
           ("7d", "last 7 days"), ("30d", "last 30 days")]
#: the states "recent failures" shows
FAILURES = (BuildState.FAILED, BuildState.ABANDONED)
#: builds a page of the Builds page shows unless ``limit`` says otherwise
PAGE_SIZE = 50
#: text searched at most, in characters
MAX_TEXT = 200


@dataclass(frozen=True)
class Filters:
    """What the reader asked for: the query, the page (from 1) and its size."""

    query: BuildQuery
    page: int
    limit: int
    job: str | None
    tag: str | None
    since: str
    until: str
    text: str

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def time_arg(name: str, now: datetime) -> tuple[datetime | None, str]:
    """``since``/``until``: ``24h`` (that long before now), or an ISO 8601 time (UTC unless
    it says otherwise); with the text as given, to show back in the form."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None, ""
    try:
        return parse_time_or_age(raw, now), raw
    except ValueError as error:
        raise BadParameter(f"{name} {error}") from None


def build_filters(*, default_limit: int = PAGE_SIZE) -> Filters:
    """The filters of this request; :class:`BadParameter` for one that cannot be used."""
    jc = current_jc()
    job = (request.args.get("job") or "").strip() or None
    tag = (request.args.get("tag") or "").strip() or None
    job_ids: tuple[str, ...] | None = None
    if job is not None:
        job_ids = (job,)  # a job since removed from the config still has its builds
    if tag is not None:
        tagged = tuple(j.id for j in jc.config.jobs.values() if tag in j.tags)
        job_ids = tagged if job_ids is None else tuple(j for j in job_ids if j in tagged)
    states = states_arg()
    now = jc.storage.now()
    since, since_text = time_arg("since", now)
    until, until_text = time_arg("until", now)
    text = (request.args.get("q") or "").strip()
    if len(text) > MAX_TEXT:
        raise BadParameter(f"q must be at most {MAX_TEXT} characters, got {len(text)}")
    before = int_arg("before", low=1)
    query = BuildQuery(job_ids=job_ids, states=tuple(states) if states else None,
                       since=since, until=until, text=text or None, before_id=before)
    limit = int_arg("limit", default_limit, low=1, high=MAX_LIMIT) or default_limit
    page = int_arg("page", 1, low=1, high=1_000_000) or 1
    return Filters(query, page, limit, job, tag, since_text, until_text, text)
