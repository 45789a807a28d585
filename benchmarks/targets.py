"""Issue 5's and issue 20's targets, judged on one run's medians: each line says MET or
MISSED, with the numbers it was judged on. A target whose rows were skipped is not judged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _per(outcomes: Sequence[Any], workload: str) -> dict[str, float]:
    """Median per unit of each measured case of a workload, by label."""
    return {o.case.label: o.per_unit for o in outcomes
            if o.case.workload == workload and o.per_unit}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _verdict(ok: bool, text: str) -> str:
    return f"{'MET   ' if ok else 'MISSED'} {text}"


def _faster_than_peers(per: dict[str, float], label: str, outcomes: Sequence[Any],
                       workload: str, only: Sequence[str] | None = None) -> str | None:
    mine = per.get(label)
    peers = {o.case.label: per[o.case.label] for o in outcomes
             if o.case.workload == workload and o.case.family not in ("jobcontrol", "baseline")
             and o.case.label in per and (only is None or o.case.family in only)}
    if mine is None or not peers:
        return None
    fastest = min(peers, key=peers.__getitem__)
    return _verdict(mine < peers[fastest],
                    f"w{workload} {label} ({_ms(mine)}/job) faster than every measured peer "
                    f"(fastest: {fastest}, {_ms(peers[fastest])}/job)")


#: the peers issue 20 holds ``isolation: pool`` on SQLite to (workloads 1 and 2), by label
POOL_PEERS = {
    "1": ("Huey consumer (SqliteHuey)", "Celery (Redis, warm worker)", "Luigi (local scheduler)"),
    "2": ("Huey pipeline, consumer", "Celery chain", "Luigi requires"),
}


def _pool_targets(w1: dict[str, float], w2: dict[str, float]) -> list[str | None]:
    """Issue 20: the pool on SQLite faster than those peers, within 1.5x of inline on w1;
    the pool on PostgreSQL within 1.5x of the bare loop of the same commits on w1."""
    lines: list[str | None] = []
    label = "jobcontrol pool, SQLite"
    for workload, per in (("1", w1), ("2", w2)):
        pool = per.get(label)
        peers = {peer: per[peer] for peer in POOL_PEERS[workload] if peer in per}
        if pool and peers:
            fastest = min(peers, key=peers.__getitem__)
            lines.append(_verdict(pool < peers[fastest],
                                  f"w{workload} {label} ({_ms(pool)}/job) faster than "
                                  f"{', '.join(peers)} (fastest: {fastest}, "
                                  f"{_ms(peers[fastest])}/job)"))
    pool, inline = w1.get(label), w1.get("jobcontrol inline, SQLite")
    if pool and inline:
        lines.append(_verdict(pool <= 1.5 * inline, f"w1 pool SQLite within 1.5x of inline: "
                              f"{pool / inline:.2f}x ({_ms(pool)} vs {_ms(inline)})"))
    pg, bare = w1.get("jobcontrol pool, PostgreSQL"), w1.get("bare loop, same PostgreSQL commits")
    if pg and bare:
        lines.append(_verdict(pg <= 1.5 * bare, f"w1 pool PostgreSQL within 1.5x of the bare "
                              f"loop: {pg / bare:.2f}x ({_ms(pg)} vs {_ms(bare)})"))
    return lines


def _inline_targets(w1: dict[str, float]) -> list[str | None]:
    """Issue 20: inline on SQLite within 2x of doit, inline on PostgreSQL within 1.5x of
    the bare loop of the same commits (workload 1)."""
    lines: list[str | None] = []
    inline, doit = w1.get("jobcontrol inline, SQLite"), w1.get("doit (sqlite3 backend)")
    if inline and doit:
        lines.append(_verdict(inline <= 2 * doit, f"w1 inline SQLite within 2x of doit (issue "
                              f"20): {inline / doit:.2f}x ({_ms(inline)} vs {_ms(doit)})"))
    pg, bare = w1.get("jobcontrol inline, PostgreSQL"), \
        w1.get("bare loop, same PostgreSQL commits")
    if pg and bare:
        lines.append(_verdict(pg <= 1.5 * bare, f"w1 inline PostgreSQL within 1.5x of the bare "
                              f"loop (issue 20): {pg / bare:.2f}x ({_ms(pg)} vs {_ms(bare)})"))
    return lines


def check_targets(outcomes: Sequence[Any]) -> list[str]:
    """One line per target that could be judged."""
    lines: list[str | None] = []
    w1 = _per(outcomes, "1")
    inline, bare = w1.get("jobcontrol inline, SQLite"), w1.get("bare loop, same SQLite writes")
    lines.append(_faster_than_peers(w1, "jobcontrol inline, SQLite", outcomes, "1"))
    if inline and bare:
        lines.append(_verdict(inline <= 1.5 * bare, f"w1 inline SQLite within 1.5x of the bare "
                              f"loop: {inline / bare:.2f}x ({_ms(inline)} vs {_ms(bare)})"))
    process, fork = w1.get("jobcontrol process, SQLite"), w1.get("bare fork + wait")
    if process and fork and inline:
        floor = fork + inline
        lines.append(_verdict(process <= 1.3 * floor, f"w1 process SQLite within 1.3x of fork "
                              f"+ inline: {process / floor:.2f}x ({_ms(process)} vs "
                              f"{_ms(floor)})"))
    lines.append(_faster_than_peers(w1, "jobcontrol process, SQLite", outcomes, "1",
                                    only=("luigi", "rq", "procrastinate")))
    pg, pg_bare = w1.get("jobcontrol inline, PostgreSQL"), \
        w1.get("bare loop, same PostgreSQL commits")
    if pg and pg_bare:
        lines.append(_verdict(pg <= 1.5 * pg_bare, f"w1 PostgreSQL within 1.5x of the bare "
                              f"loop: {pg / pg_bare:.2f}x ({_ms(pg)} vs {_ms(pg_bare)})"))
    w2 = _per(outcomes, "2")
    lines.append(_faster_than_peers(w2, "jobcontrol inline, SQLite", outcomes, "2"))
    lines += _pool_targets(w1, w2)
    lines += _inline_targets(w1)
    w3 = _per(outcomes, "3")
    floor = w3.get("logging.FileHandler")
    for label, per in w3.items():
        if label.startswith("jobcontrol") and floor:
            rate = 1 / per
            lines.append(_verdict(per <= 2 * floor and rate >= 80_000,
                                  f"w3 {label}: {per / floor:.2f}x FileHandler (at most 2x), "
                                  f"{rate:,.0f} lines/s (at least 80,000)"))
    w4 = {o.case.label: o.median for o in outcomes if o.case.workload == "4" and o.median}
    for label, median in w4.items():
        flat = ""
        if label.endswith("1,000,000 builds"):
            small = w4.get(label.replace("1,000,000", "10,000"))
            if small:
                flat = f", {median / small:.2f}x the time at 10,000 builds"
        lines.append(_verdict(median < 0.2, f"w4 {label}: {median * 1000:.0f} ms "
                              f"(under 200 ms){flat}"))
    w5 = {o.case.label: o.median for o in outcomes if o.case.workload == "5" and o.median}
    version, imports = w5.get("jobcontrol --version"), w5.get('python -c "import click, yaml"')
    if version and imports:
        lines.append(_verdict(version <= 1.5 * imports, f"w5 --version within 1.5x of importing "
                              f"click and yaml: {version / imports:.2f}x "
                              f"({version * 1000:.0f} ms vs {imports * 1000:.0f} ms)"))
    return [line for line in lines if line]
