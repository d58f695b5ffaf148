"""What the `liteship fleet` command modules share (``cli/fleet.py``, ``fleet_bench.py``, ``fleet_jobs.py``,
``fleet_samples.py``): the --server/--token options and the admin clients they build, the job groups'
``FILE…`` shorthand and the wait for a job. Each command module imports this one and none imports another;
``cli/fleet.py`` adds their groups to ``liteship fleet``."""

from __future__ import annotations

from typing import Any

import click

from liteship.errors import UsageError
from liteship.progress import track_until

DEFAULT_SERVER = "http://127.0.0.1:8700"  # liteship.fleet.client.DEFAULT_SERVER (not imported: httpx)


def device_selector(
    devices: tuple[str, ...], group: str | None, profile: tuple[str, ...], tags: tuple[str, ...]
) -> dict[str, Any]:
    """The devices of a job as :meth:`liteship.fleet.jobs_client.BenchClient.queue` takes them: exactly
    one of --device, --group, --profile, --tag (else a usage error, exit 2)."""
    from liteship.fleet.jobs_client import parse_profile

    options = (("--device", devices), ("--group", group), ("--profile", profile), ("--tag", tags))
    chosen = [name for name, v in options if v]
    if len(chosen) != 1:
        raise UsageError(
            "choose the devices with exactly one of --device, --group, --profile, --tag "
            f"(got {', '.join(chosen) or 'none'})."
        )
    return {
        "devices": list(devices) or None,
        "group": group,
        "profile": parse_profile(profile) if profile else None,
        "tags": list(tags) or None,
    }


def remember(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Store --server/--token wherever they appear (group or sub-command); the last one wins."""
    if value is not None:
        ctx.ensure_object(dict)[param.name] = value
    return value


def connection_options(f: Any) -> Any:
    """--server and --token, accepted before and after the sub-command."""
    f = click.option(
        "--token",
        metavar="TOKEN",
        expose_value=False,
        callback=remember,
        help="Admin token. Defaults to $LITESHIP_TOKEN.",
    )(f)
    return click.option(
        "--server",
        metavar="URL",
        expose_value=False,
        callback=remember,
        help=f"Fleet server URL. Defaults to $LITESHIP_SERVER, else {DEFAULT_SERVER}.",
    )(f)


def admin_client(ctx: click.Context) -> Any:
    from liteship.fleet.client import AdminClient

    obj = ctx.ensure_object(dict)
    return AdminClient(obj.get("server"), obj.get("token"))


def bench_client(ctx: click.Context) -> Any:
    from liteship.fleet.jobs_client import BenchClient

    obj = ctx.ensure_object(dict)
    return BenchClient(obj.get("server"), obj.get("token"))


class QueueGroup(click.Group):
    """``fleet bench FILE…`` queues (the ``queue`` sub-command); ``results`` and ``list`` read."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["queue", *args]
        return super().parse_args(ctx, args)


def wait_for_job(client: Any, job_id: str, timeout_s: float, show: bool) -> dict[str, Any]:
    with track_until(f"waiting for {job_id}", enabled=show) as update:

        def progress(job: dict[str, Any]) -> None:
            done = sum(t["state"] not in ("queued", "running") for t in job["tasks"])
            update(done, len(job["tasks"]))

        return client.wait(job_id, timeout_s=timeout_s, on_progress=progress)
