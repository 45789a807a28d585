"""The callables of examples/jobs.yaml: plain functions, runnable without jobcontrol too."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import statistics
from pathlib import Path

from jobcontrol import SkipBuild, current_build, progress

HERE = Path(__file__).parent
logger = logging.getLogger(__name__)


def fetch_prices(source: str) -> list[dict]:
    """Read the daily prices CSV and return its rows."""
    path = HERE / source
    logger.info("reading %s", path.name)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for index, row in enumerate(rows, 1):
        row["price"] = float(row["price"])
        if index % 20 == 0 or index == len(rows):
            progress(index, len(rows), "rows read")
    logger.info("read %d rows", len(rows))
    return rows


def summarize(rows: list[dict], symbols: list[str]) -> dict:
    """First, last, low, high and mean price of each symbol."""
    summary = {}
    for done, symbol in enumerate(symbols, 1):
        prices = [row["price"] for row in rows if row["symbol"] == symbol]
        if not prices:
            logger.warning("no prices for %s", symbol)
            continue
        summary[symbol] = {
            "first": prices[0], "last": prices[-1], "low": min(prices), "high": max(prices),
            "mean": round(statistics.fmean(prices), 2),
            "change_pct": round((prices[-1] / prices[0] - 1) * 100, 2),
        }
        progress(done, len(symbols), symbol, group="symbols")
    print(f"summarized {len(summary)} symbols")  # printed lines are kept in the log too
    return summary


def write_report(summary: dict, path: str) -> str:
    """Write a plain-text report of the summary; return where it went."""
    target = HERE / path
    target.parent.mkdir(parents=True, exist_ok=True)
    build = current_build()
    lines = [f"Price report (build #{build.id if build else '-'})", ""]
    for symbol, stats in sorted(summary.items()):
        lines.append(f"{symbol:<8} {stats['first']:>8.2f} -> {stats['last']:>8.2f} "
                     f"({stats['change_pct']:+.2f}%)  low {stats['low']:.2f}  "
                     f"high {stats['high']:.2f}")
    target.write_text("\n".join(lines) + "\n")
    logger.info("report written to %s", target)
    return str(target)


def remove_report(build) -> None:
    """Cleanup when a report build is deleted: remove the file it wrote."""
    if build.retval:
        Path(build.retval).unlink(missing_ok=True)


def archive(source: str, folder: str) -> str:
    """Copy the data into the archive, named by its hash; skip when already archived."""
    data = (HERE / source).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = HERE / folder / f"prices-{digest}.csv"
    if target.exists():
        raise SkipBuild(f"already archived as {target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / source, target)
    logger.info("archived as %s", target.name)
    return target.name
