"""``/metrics``: the Prometheus text format, behind the same authentication as the JSON API
(a scraper sends ``Authorization: Bearer TOKEN``).

A job is labelled ``job_id``, never ``job``: Prometheus gives every series it scrapes the
target's own ``job`` label, and renames a scraped ``job`` to ``exported_job``, so a query
for ``{job="report"}`` would find nothing. ``jobcontrol_builds_total`` counts finished
builds only: a counter must never go down, and a state a build leaves (queued, running)
would; those are the ``jobcontrol_running_builds`` and ``jobcontrol_queued_builds`` gauges.

Everything is read from the storage at each scrape, so every process serving the web UI
answers the same. The reads stay cheap however long the history: builds are counted by
job and state from the ``(job_id, state, id)`` index (:meth:`Storage.build_counts`), the
status of all jobs is the one status query, and durations come from each job's latest
:data:`DURATION_WINDOW` builds (an index range each, never the whole table).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from jobcontrol.models import BuildState
from jobcontrol.web.helpers import current_jc

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from jobcontrol.core import JobControl

bp = Blueprint("metrics", __name__)

#: the path scrapers fetch (answered 401 without credentials, as the API)
METRICS_PATH = "/metrics"
#: the latest finished builds of each job whose durations the duration summary describes
DURATION_WINDOW = 100
#: the quantiles of the duration summary
QUANTILES = (0.5, 0.9, 0.99)
#: the label naming a job (see the module's docstring)
JOB_LABEL = "job_id"


class JobControlCollector:
    """The ``jobcontrol_*`` metrics of one JobControl, read afresh at each collect."""

    def __init__(self, jc: JobControl) -> None:
        self.jc = jc

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        jc = self.jc
        counts = jc.storage.build_counts()
        builds = CounterMetricFamily(
            "jobcontrol_builds", "Finished builds recorded, by job and state (prune "
            "deletes old ones: a drop reads as a counter reset).", labels=[JOB_LABEL, "state"])
        for (job_id, state), count in sorted(counts.items()):
            if state.finished:
                builds.add_metric([job_id, state.value], count)
        yield builds
        for state, name in ((BuildState.RUNNING, "running"), (BuildState.QUEUED, "queued")):
            yield GaugeMetricFamily(
                f"jobcontrol_{name}_builds", f"Builds {name} now, all jobs together.",
                value=sum(n for (_, s), n in counts.items() if s is state))
        statuses = jc.status()
        yield GaugeMetricFamily("jobcontrol_stale_jobs",
                                "Jobs whose last success is older than their max_age.",
                                value=sum(1 for status in statuses if status.stale))
        last = GaugeMetricFamily(
            "jobcontrol_last_success_timestamp_seconds",
            "When each job's latest successful build finished (Unix time); jobs never "
            "built successfully are absent.", labels=[JOB_LABEL])
        paused = GaugeMetricFamily("jobcontrol_job_paused",
                                   "1 while the job is paused (jobcontrol pause), else 0.",
                                   labels=[JOB_LABEL])
        for status in statuses:
            finished = status.last_success.finished if status.last_success else None
            if finished is not None:
                last.add_metric([status.job.id], finished.timestamp())
            paused.add_metric([status.job.id], 1.0 if status.paused else 0.0)
        yield last
        yield paused
        durations = SummaryMetricFamily(
            "jobcontrol_build_duration_seconds",
            f"Durations (finished - started) of each job's latest {DURATION_WINDOW} builds "
            f"that have both (quantiles; _count and _sum over the same builds).",
            labels=[JOB_LABEL])
        for status in statuses:
            seconds = self._durations(status.job.id)
            if seconds:
                # SummaryMetricFamily takes no quantiles: its samples, added one by one
                durations.add_metric([status.job.id], len(seconds), sum(seconds))
                for quantile in QUANTILES:
                    durations.add_sample(
                        "jobcontrol_build_duration_seconds",
                        {JOB_LABEL: status.job.id, "quantile": str(quantile)},
                        _quantile(seconds, quantile))
        yield durations

    def _durations(self, job_id: str) -> list[float]:
        """Seconds each of the job's latest finished builds that ran took, sorted."""
        stubs = self.jc.storage.build_stubs(job_id, limit=DURATION_WINDOW)
        return sorted((stub.finished - stub.started).total_seconds() for stub in stubs
                      if stub.started is not None and stub.finished is not None)


def _quantile(ordered: list[float], quantile: float) -> float:
    """The ``quantile`` of sorted values, by the nearest rank."""
    rank = max(0, min(len(ordered) - 1, round(quantile * len(ordered)) - 1))
    return ordered[rank]


@bp.get(METRICS_PATH)
def metrics() -> Any:
    """The metrics in the Prometheus text format."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobControlCollector(current_jc()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
