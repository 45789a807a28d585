"""Shell jobs on real Celery workers (Redis and RabbitMQ, recorded in PostgreSQL): a shell
job is a job like any other to them (the workers of ``tests/test_celery.py``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support import make_project
from tests.test_celery import Cluster, broker, worker  # noqa: F401 - fixtures used here

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
runner: {{heartbeat: 0.2s, heartbeat_timeout: 2s, kill_grace: 1s}}
jobs:
  - id: greet
    command: [sh, -c, 'echo "hello from build $JOBCONTROL_BUILD_ID"; echo "$WHO" >&2']
    env: {{WHO: the worker}}
  - id: refuses
    command: "echo giving up; exit 4"
    dependencies: [greet]
"""


@pytest.fixture
def cluster(broker: str, pg_url: str, tmp_path: Path) -> Cluster:  # noqa: F811
    queue = f"jctest-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "project",
                          CONFIG.format(broker=broker, queue=queue, dsn=pg_url))
    return Cluster(config, pg_url, pg_url)


@pytest.mark.usefixtures("worker")
def test_a_shell_job_runs_on_a_worker(cluster: Cluster) -> None:
    code, out, err = cluster.run("build", "refuses", "--deps", "--async", "--wait",
                                 "--format", "json")
    assert code == 1, err
    greet, refuses = json.loads(out)
    assert (greet["job"], greet["state"]) == ("greet", "success")
    assert (refuses["state"], refuses["reason"]) == ("failed", "exit status 4")
    with cluster.control() as jc:
        assert jc.get_build(greet["id"]).retval == 0
        assert jc.get_build(refuses["id"]).retval == 4
        assert [(r.level_name, r.message) for r in jc.logs(greet["id"])] == [
            ("INFO", f"hello from build {greet['id']}"), ("WARNING", "the worker")]
