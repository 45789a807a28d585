"""How fast is the web UI's jobs page over a big history? 100 jobs x 1,000,000 builds.

Fills a fresh store per backend the way ``status_query.py`` does (one in ten jobs has a
running build, here with a fresh heartbeat and a progress report, so the page draws its
bars), then times ``GET /`` through Flask's test client: the status query, the reaper's look
at running builds, their progress, and the template, everything but the socket. Also
``GET /api/v1/jobs`` for comparison. Then every other page (a job, its launch form, the
graph, the Builds page with each filter, a build and what its page polls, the runs, the live
token). The target, issue 22's: every page under 100 ms (the jobs page's was 300 ms).

Run from a checkout::

    python benchmarks/web_jobs_page.py                      # both backends, 1M builds
    python benchmarks/web_jobs_page.py --backend sqlite --builds 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from status_query import (  # noqa: E402  (the 1M-build fill is shared, not copied)
    drop_postgresql,
    fill_postgresql,
    fill_sqlite,
    median_ms,
    write_config,
)

from jobcontrol import JobControl  # noqa: E402
from jobcontrol.models import BuildState, ProgressItem  # noqa: E402
from jobcontrol.storage import open_storage  # noqa: E402
from jobcontrol.web import create_app  # noqa: E402


def freshen_running(url: str) -> int:
    """Give every running build a heartbeat of now and a progress report, so the reaper
    leaves them running and the page shows their bars; returns how many there are."""
    with open_storage(url) as storage:
        running = storage.list_builds(states=[BuildState.RUNNING])
        storage.heartbeat([b.id for b in running])
        for n, build in enumerate(running):
            storage.set_progress(build.id, [ProgressItem((), n % 10, 10, "rows")])
    return len(running)


def bench(url: str, config: Path, repeat: int, builds: int) -> None:
    running = freshen_running(url)
    with JobControl.from_config(config, url) as jc:
        client = create_app(jc).test_client()

        def page() -> None:
            response = client.get("/")
            assert response.status_code == 200, response.status_code

        def api() -> None:
            assert client.get("/api/v1/jobs").status_code == 200

        html = client.get("/").get_data(as_text=True)
        rows, bars = html.count('<tr id="job-'), html.count("<progress ")
        print(f"  page: {rows} job rows, {bars} progress bars ({running} running), "
              f"{len(html) / 1024:.0f} KiB")
        page_ms, times = median_ms(page, repeat)
        print(f"  GET /            median {page_ms:.1f} ms "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
        api_ms, times = median_ms(api, repeat)
        print(f"  GET /api/v1/jobs median {api_ms:.1f} ms "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
        # the first target, 300 ms; issue 22 asks every page, this one too, under 100
        verdict = "under" if page_ms < PAGE_TARGET_MS else "OVER"
        print(f"  jobs page: {verdict} {PAGE_TARGET_MS} ms")
        time_every_page(client, repeat, builds)


#: every page and live endpoint, with the Builds page's filters at their dearest: a deep
#: page, a window in the middle of the history (the fill makes a build a second from
#: 2020-01-01), a text search matching nothing (the one filter no index answers); {middle}
#: is the build in the middle of the history, whatever ``--builds`` says
PAGES = [
    "/jobs/job_007", "/graph", "/builds", "/builds?state=failed",
    "/builds?state=failed&page=1000", "/builds?job=job_007", "/builds?job=job_007&state=failed",
    "/builds?since=2020-01-06T00:00:00Z&until=2020-01-07T00:00:00Z",
    "/builds?q=job_007", "/builds?q=no+such+text", "/builds/{middle}",
    "/builds/{middle}/live?tail=1", "/jobs/job_007/launch", "/runs",
    "/api/v1/builds?state=failed", "/api/v1/changes",
]
#: the issue's bar for every page over a million builds
PAGE_TARGET_MS = 100


def time_every_page(client: object, repeat: int, builds: int) -> None:
    for path in (page.format(middle=builds // 2) for page in PAGES):
        def get(path: str = path) -> None:
            response = client.get(path)  # type: ignore[attr-defined]
            assert response.status_code == 200, (path, response.status_code)

        ms, _ = median_ms(get, repeat)
        verdict = "" if ms < PAGE_TARGET_MS else f"  OVER {PAGE_TARGET_MS} ms"
        print(f"  GET {path:<62} median {ms:7.1f} ms{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--builds", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs (median reported)")
    parser.add_argument("--postgresql", default=os.environ.get(
        "JOBCONTROL_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a server to create a database of this run's own on (dropped after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobcontrol-web-bench-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, args.jobs)
        (folder / "pipeline.py").write_text('def step(days):\n    """One step."""\n')
        for dialect in ("sqlite", "postgresql"):
            if args.backend not in (dialect, "both"):
                continue
            print(f"{dialect}: {args.jobs} jobs x {args.builds:,} builds")
            if dialect == "sqlite":
                bench(fill_sqlite(folder, args.jobs, args.builds), config, args.repeat, args.builds)
                continue
            url = fill_postgresql(args.postgresql, args.jobs, args.builds)
            try:
                bench(url, config, args.repeat, args.builds)
            finally:
                drop_postgresql(args.postgresql, url)


if __name__ == "__main__":
    main()
