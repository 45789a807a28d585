"""``jobcontrol jobs``, ``job`` and ``graph``: the definitions and how they depend."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
import yaml

from jobcontrol.cli.helpers import (
    complete_job_ids,
    echo,
    echo_json,
    echo_table,
    format_option,
    pass_jc,
)
from jobcontrol.importing import describe_callable
from jobcontrol.present import job_detail_json, job_json
from jobcontrol.rules import graph as graphs
from jobcontrol.storage import redact_url
from jobcontrol.text import json_text, visible
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.config import JobDefinition
    from jobcontrol.core import JobControl


@click.command()
@click.option("--tag", help="Only jobs with this tag.")
@format_option
@pass_jc
def jobs(jc: JobControl, tag: str | None, fmt: str) -> None:
    """List the jobs the config defines."""
    selected = [job for job in jc.config.jobs.values() if tag is None or tag in job.tags]
    if fmt == "json":
        echo_json([job_json(job) for job in selected])
        return
    echo_table(
        ([job.id, job.title, _runs(job), ", ".join(job.dependencies), ", ".join(job.tags)]
         for job in selected),
        ["id", "title", "function or command", "dependencies", "tags"],
    )


def _runs(job: JobDefinition) -> str:
    """What a job runs: its function, or ``$ command`` for a shell job."""
    command = job.command_text()
    return job.function if command is None else f"$ {visible(command)}"


@click.command()
@click.argument("job_id", metavar="JOB", shell_complete=complete_job_ids)
@format_option
@pass_jc
def job(jc: JobControl, job_id: str, fmt: str) -> None:
    """Show one job: its definition, the function's signature and docstring."""
    if fmt == "json":
        echo_json(job_detail_json(jc, job_id))
        return
    definition = jc.job(job_id)
    dependents = graphs.dependents_map(jc.config.dependencies).get(job_id, [])
    echo(f"{definition.id}: {visible(definition.title)}", bold=True)
    echo(f"defined at {definition.location}")
    command = definition.command_text()
    if command is None:
        signature, doc = describe_callable(jc.import_function(job_id))
        name = definition.function.replace(":", ".").rsplit(".", 1)[-1]
        echo(f"\n  {definition.function}  ->  def {name}{signature}")
        if doc:
            echo("\n" + "\n".join(f"    {line}" for line in doc.splitlines()))
    else:
        echo(f"\n  $ {visible(command)}")
    echo("")
    snapshot = definition.snapshot()
    for key in ("args", "kwargs", "env"):
        if snapshot.get(key):
            echo(f"{key}: {json_text(snapshot[key])}")
    if command is not None:
        echo(f"cwd: {visible(snapshot['cwd'] or '.')} (from the config file's folder)")
    echo(f"dependencies: {', '.join(definition.dependencies) or '(none)'}")
    echo(f"dependents: {', '.join(dependents) or '(none)'}")
    if definition.tags:
        echo(f"tags: {', '.join(definition.tags)}")
    options = [f"isolation={definition.isolation}", f"concurrency={definition.concurrency}",
               f"result={definition.result}"]
    if definition.timeout is not None:
        options.append(f"timeout={format_duration(definition.timeout)}")
    if definition.cleanup_function:
        options.append(f"cleanup={definition.cleanup_function}")
    if definition.code_version is not None:
        options.append(f"code_version={definition.code_version}")
    echo("options: " + ", ".join(options))
    if definition.inputs:
        echo(f"inputs: {', '.join(definition.inputs)}")


def _dot_id(job_id: str) -> str:
    return json.dumps(job_id)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "json"]), default="text",
              show_default=True, help="text (an indented tree), Graphviz dot, or JSON.")
@pass_jc
def graph(jc: JobControl, fmt: str) -> None:
    """Print the dependency graph (`--format dot | dot -Tsvg > graph.svg`)."""
    deps = jc.config.dependencies
    order = graphs.topological_order(deps)
    if fmt == "json":
        echo_json({job_id: list(deps[job_id]) for job_id in order})
    elif fmt == "dot":
        echo("digraph jobcontrol {")
        echo("  rankdir=LR;")
        echo("  node [shape=box, style=rounded];")
        for job_id in order:
            label = jc.config.jobs[job_id].title
            echo(f"  {_dot_id(job_id)} [label={json.dumps(label)}];")
        for job_id in order:
            for dep in deps[job_id]:
                echo(f"  {_dot_id(dep)} -> {_dot_id(job_id)};")
        echo("}")
    else:
        for job_id in order:
            after = f"  <- {', '.join(deps[job_id])}" if deps[job_id] else ""
            echo(f"{job_id}{after}")


@click.command("config")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@pass_jc
def config_command(jc: JobControl, fmt: str) -> None:
    """Print the config as loaded: rendered by Jinja2, with defaults applied."""
    config = jc.config
    if fmt == "json":
        echo_json({"path": str(config.path), "storage": redact_url(jc.storage.url),
                   "jobs": [job_json(j) for j in config.jobs.values()]})
        return
    echo(f"# {config.path} (rendered)")
    echo(config.masker.text(config.rendered).rstrip("\n"))
    echo("\n# as loaded, with defaults applied:")
    echo(yaml.safe_dump({"jobs": [j.snapshot() for j in config.jobs.values()]},
                              sort_keys=False, allow_unicode=True).rstrip("\n"))


COMMANDS = [jobs, job, graph, config_command]
