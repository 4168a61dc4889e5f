"""Processes and flow control: ``worker``, ``beat``, ``flower``, ``demo``, ``pause``
(``up`` and ``down`` are in ``up_cmd``)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from fleet_queue.cli.common import JsonFlag, console, emit, settings_of
from fleet_queue.settings import Settings


def _exec(command: list[str], settings: Settings) -> None:
    """Become the Celery process, so signals and exit codes are Celery's own."""
    from fleet_queue.processes import child_env

    os.execvpe(command[0], command, child_env(settings))


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Threads for deliveries and ticks.")] = 4,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run this host's worker: its delivery queue and the tenant's control queue."""
    settings = settings_of(ctx)
    from fleet_queue.broker import require_broker

    require_broker(settings)
    from fleet_queue.processes import worker_command

    _exec(worker_command(settings, concurrency, loglevel), settings)


def beat(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run the fleet's one beat (tick, reclaim, host status); a second one refuses to start."""
    settings = settings_of(ctx)
    from fleet_queue.broker import require_broker

    require_broker(settings)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    from fleet_queue.processes import beat_command

    _exec(beat_command(settings, loglevel), settings)


def flower(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5555,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Run Flower on the fleet's broker (basic auth from FLEET_FLOWER_AUTH)."""
    settings = settings_of(ctx)
    from fleet_queue.credentials import flower_environment
    from fleet_queue.processes import flower_command

    os.environ.update(flower_environment(settings))  # not argv: /proc/PID/cmdline is public
    _exec(flower_command(settings, port, address), settings)


def pause(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why, shown in ps and stats.")] = "operator pause",
) -> None:
    """Stop dispatch and delivery fleet-wide until `fleet resume`."""
    from fleet_queue.audit import actor
    from fleet_queue.composition import open_card_store
    from fleet_queue.pause import pause_fleet

    settings = settings_of(ctx)
    store = open_card_store(settings)
    pause_fleet(store, settings, reason, by=actor())
    typer.echo(f"paused: {reason}")


def resume(ctx: typer.Context) -> None:
    """Resume dispatch and nudge a tick."""
    from fleet_queue.audit import actor
    from fleet_queue.composition import open_card_store
    from fleet_queue.nudge import nudge_tick
    from fleet_queue.pause import resume_fleet

    settings = settings_of(ctx)
    store = open_card_store(settings)
    resume_fleet(store, settings, by=actor())
    nudge_tick(settings, reason="resume")
    typer.echo("resumed")


def tick(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Send one supervisor tick now (dispatch without waiting for beat)."""
    from fleet_queue.broker import require_broker
    from fleet_queue.nudge import send_tick
    from fleet_queue.queues import TICK_TASK

    settings = settings_of(ctx)
    require_broker(settings)
    send_tick(settings)
    emit({"sent": TICK_TASK}, as_json, lambda: typer.echo("tick sent"))


def demo(
    ctx: typer.Context,
    work: Annotated[float, typer.Option(help="Seconds each stub agent works a card.")] = 0.5,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 180.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary home (store, logs).")] = False,
    runtime: Annotated[
        str,
        typer.Option(
            help="The coders: stub, or the real claude / codex / pi / opencode CLI on a model"
            " double."
        ),
    ] = "stub",
    as_json: JsonFlag = False,
) -> None:
    """Run a fleet end to end in a temporary home; exit 0 when every card is done."""
    from fleet_queue.demo import run_demo
    from workers.fleet_agents import HOST_AGENTS

    report = run_demo(
        HOST_AGENTS, work_seconds=work, timeout=timeout, quiet=as_json, keep=keep, runtime=runtime
    )
    data = report.as_dict()
    emit(data, as_json, lambda: console.print(report.render()))
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("worker", worker), ("beat", beat), ("flower", flower), ("demo", demo),
        ("pause", pause), ("resume", resume), ("tick", tick),
    ):  # fmt: skip
        app.command(name)(command)
