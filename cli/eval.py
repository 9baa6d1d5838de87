"""`arena eval --image REF@sha256:...`: evaluate an image the way the validator would.

By default it submits ``python -m harness.eval`` as a Ray job to a running cluster, reserving
the profile's evaluation resources (so it queues behind the validator's own evals); ``--local``
runs it in this process instead, with only Docker needed; ``--dry-run`` prints the container
specs of the baseline and the challenger (image, command, environment, mounts, GPUs, limits,
network) and runs nothing.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.options import BaselineImage, ProfileName, RayAddress
from harness.profile import get_profile
from harness.sandbox_image import require_pinned_baseline

_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def eval_image(
    image: Annotated[str, typer.Option(help="image pinned by digest: REGISTRY/REPO@sha256:<hex>")],
    profile: ProfileName = "local",
    seed: Annotated[str, typer.Option(help="round seed (a block hash); random if unset")] = "",
    out: Annotated[Path | None, typer.Option(help="where to write the JSON report")] = None,
    local: Annotated[bool, typer.Option(help="run in this process, not as a Ray job")] = False,
    ray_address: RayAddress = "http://127.0.0.1:8265",
    baseline_image: BaselineImage = None,
    dry_run: Annotated[
        bool, typer.Option(help="print the container specs that would run; run nothing")
    ] = False,
) -> None:
    """Evaluate one image against the baseline, as the validator would."""
    try:
        # Checked here too, so a bad baseline fails before a Ray job waits for a GPU node.
        baseline = require_pinned_baseline(get_profile(profile), baseline_image)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    args = ["--image", image, "--profile", profile, "--baseline-image", baseline]
    if seed:
        args += ["--seed", seed]
    if out:
        args += ["--out", str(out.resolve())]
    if dry_run:
        args.append("--dry-run")
    if local or dry_run:
        from cli.progress import RoundProgressView
        from harness.eval import main

        with RoundProgressView() as view:
            code = main(args, on_progress=view.update)
        raise typer.Exit(code)
    raise typer.Exit(_submit(ray_address, profile, args))


def _submit(address: str, profile_name: str, args: list[str]) -> int:
    from ray.job_submission import JobSubmissionClient

    profile = get_profile(profile_name)
    client = JobSubmissionClient(address)
    entrypoint = shlex.join([sys.executable, "-m", "harness.eval", *args])
    job_id = client.submit_job(
        entrypoint=entrypoint,
        entrypoint_num_gpus=profile.evaluator_num_gpus or None,
        entrypoint_resources=dict(profile.evaluator_resources) or None,
    )
    typer.echo(f"submitted Ray job {job_id} (waiting for an evaluation slot)")
    printed = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        sys.stdout.write(logs[printed:])
        printed = len(logs)
        if status in _TERMINAL:
            break
        time.sleep(1.0)  # polling interval while the job runs
    info = client.get_job_info(job_id)
    if status != "SUCCEEDED":
        typer.echo(f"job {job_id} ended {status}: {info.message}", err=True)
    return 0 if status == "SUCCEEDED" else 1
