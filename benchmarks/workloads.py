"""The six workloads of issue 5, as cases: which tool, which function, what size.

A case names a function ``module:function`` called in a fresh subprocess as
``function(workdir, **kwargs)``; it returns :func:`benchmarks.common.result` or raises
:class:`benchmarks.common.Skipped`. The first jobcontrol case of a workload is the one the
others' ratios are taken to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: every workload: number → title
TITLES = {
    "1": "1000 independent no-op jobs",
    "2": "chain of 100 jobs passing return values",
    "3": "one job writing 100,000 log lines",
    "4": "status / builds --limit 50 over a big history",
    "5": "CLI start-up",
    "6": "scale: workload 1 at 100 / 1,000 / 10,000 jobs",
}


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``--quick`` makes them tiny."""

    jobs: int = 1000
    chain: int = 100
    lines: int = 100_000
    history_jobs: int = 100
    histories: tuple[int, ...] = (10_000, 1_000_000)
    scale: tuple[int, ...] = (100, 1000, 10_000)


QUICK = Sizes(jobs=20, chain=10, lines=2000, history_jobs=10, histories=(1000,), scale=(10, 50))


@dataclass(frozen=True)
class Case:
    """One tool's run of one workload."""

    workload: str
    label: str
    #: "jobcontrol", "baseline", or the peer's package name (``--tools`` filters on it)
    family: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: what one unit of ``count`` is, for the per-unit column
    unit: str = "job"

    @property
    def key(self) -> str:
        return f"{self.workload}:{self.label}"


def cases(sizes: Sizes) -> list[Case]:
    """Every case, in table order."""
    jc, base = "benchmarks.jc_cases", "benchmarks.baselines"
    peers = "benchmarks.peers"
    n = sizes.jobs
    out: list[Case] = []
    w1 = [
        ("jobcontrol inline, SQLite", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "inline", "backend": "sqlite"}),
        ("jobcontrol process, SQLite", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "process", "backend": "sqlite"}),
        ("jobcontrol pool, SQLite", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "pool", "backend": "sqlite"}),
        ("jobcontrol inline, PostgreSQL", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "inline", "backend": "postgresql"}),
        ("jobcontrol process, PostgreSQL", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "process", "backend": "postgresql"}),
        ("jobcontrol pool, PostgreSQL", "jobcontrol", f"{jc}:independent",
         {"jobs": n, "isolation": "pool", "backend": "postgresql"}),
        ("bare loop, same SQLite writes", "baseline", f"{base}:sqlite_loop", {"jobs": n}),
        ("bare loop, same PostgreSQL commits", "baseline", f"{base}:postgresql_loop",
         {"jobs": n}),
        ("bare fork + wait", "baseline", f"{base}:fork_loop", {"jobs": n}),
        ("doit (sqlite3 backend)", "doit", f"{peers}.doit_case:independent", {"jobs": n}),
        ("Huey immediate (SqliteHuey)", "huey", f"{peers}.huey_case:independent",
         {"jobs": n, "immediate": True}),
        ("Huey consumer (SqliteHuey)", "huey", f"{peers}.huey_case:independent",
         {"jobs": n, "immediate": False}),
        ("Luigi (local scheduler)", "luigi", f"{peers}.luigi_case:independent", {"jobs": n}),
        ("Celery (Redis, warm worker)", "celery", f"{peers}.celery_case:independent",
         {"jobs": n}),
        ("RQ (warm worker)", "rq", f"{peers}.rq_case:independent", {"jobs": n}),
        ("Procrastinate (warm worker)", "procrastinate",
         f"{peers}.procrastinate_case:independent", {"jobs": n}),
    ]
    out += [Case("1", *spec) for spec in w1]
    c = sizes.chain
    w2 = [
        ("jobcontrol inline, SQLite", "jobcontrol", f"{jc}:chain",
         {"jobs": c, "isolation": "inline", "backend": "sqlite"}),
        ("jobcontrol process, SQLite", "jobcontrol", f"{jc}:chain",
         {"jobs": c, "isolation": "process", "backend": "sqlite"}),
        ("jobcontrol pool, SQLite", "jobcontrol", f"{jc}:chain",
         {"jobs": c, "isolation": "pool", "backend": "sqlite"}),
        ("jobcontrol inline, PostgreSQL", "jobcontrol", f"{jc}:chain",
         {"jobs": c, "isolation": "inline", "backend": "postgresql"}),
        ("jobcontrol pool, PostgreSQL", "jobcontrol", f"{jc}:chain",
         {"jobs": c, "isolation": "pool", "backend": "postgresql"}),
        ("doit getargs", "doit", f"{peers}.doit_case:chain", {"jobs": c}),
        ("Huey pipeline, immediate", "huey", f"{peers}.huey_case:chain",
         {"jobs": c, "immediate": True}),
        ("Huey pipeline, consumer", "huey", f"{peers}.huey_case:chain",
         {"jobs": c, "immediate": False}),
        ("Luigi requires", "luigi", f"{peers}.luigi_case:chain", {"jobs": c}),
        ("Celery chain", "celery", f"{peers}.celery_case:chain", {"jobs": c}),
    ]
    out += [Case("2", *spec) for spec in w2]
    lines = sizes.lines
    w3 = [
        ("jobcontrol inline, SQLite", "jobcontrol", f"{jc}:long_log",
         {"lines": lines, "isolation": "inline", "backend": "sqlite"}),
        ("jobcontrol process, SQLite", "jobcontrol", f"{jc}:long_log",
         {"lines": lines, "isolation": "process", "backend": "sqlite"}),
        ("jobcontrol process, PostgreSQL", "jobcontrol", f"{jc}:long_log",
         {"lines": lines, "isolation": "process", "backend": "postgresql"}),
        ("logging.FileHandler", "baseline", f"{base}:file_handler", {"lines": lines}),
    ]
    out += [Case("3", *spec, unit="line") for spec in w3]
    for backend, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        for builds in sizes.histories:
            for argv in (["status"], ["builds", "--limit", "50"]):
                out.append(Case(
                    "4", f"{' '.join(argv)}, {name}, {builds:,} builds", "jobcontrol",
                    f"{jc}:history_command",
                    {"argv": argv, "backend": backend, "jobs": sizes.history_jobs,
                     "builds": builds}, unit="command"))
    out += [
        Case("5", "jobcontrol --version", "jobcontrol", f"{jc}:command",
             {"argv": ["--version"]}, unit="command"),
        Case("5", "jobcontrol status (empty store)", "jobcontrol", f"{jc}:command",
             {"argv": ["status"]}, unit="command"),
        Case("5", 'python -c "import click, yaml"', "baseline", f"{jc}:python_command",
             {"code": "import click, yaml"}, unit="command"),
        Case("5", 'python -c "pass"', "baseline", f"{jc}:python_command",
             {"code": "pass"}, unit="command"),
    ]
    for jobs in sizes.scale:
        for backend, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
            out.append(Case("6", f"jobcontrol inline, {name}, {jobs:,} jobs", "jobcontrol",
                            f"{jc}:independent",
                            {"jobs": jobs, "isolation": "inline", "backend": backend}))
    return out
