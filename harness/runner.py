"""Run one untrusted server image in a sandbox and hand back its URL; always clean up.

    image = pull_pinned(client, "127.0.0.1:5000/arena/x@sha256:...", profile)
    with Sandbox(client, image, profile, name="eval-42-challenger") as box:
        box.wait_healthy()
        ... measure box.url ...
    box.logs                                   # bounded tail, kept after removal

The container gets: the weights read-only at ``/models``, its own ``internal`` bridge network
(no route out; the host reaches it at its address on that bridge), a read-only root with a tmpfs
``/tmp``, no capabilities, ``no-new-privileges``, pids/memory/CPU/shm limits, ``init`` as PID 1,
an unprivileged user, GPUs only when the profile asks for them, the profile's CPUs (pinned, so
the measuring client keeps a core of its own), and bounded logs. Everything it
creates is labelled ``org.arena.sandbox`` so :func:`remove_leftovers` can sweep after a crash.
Images are pulled by digest only, after the registry manifest passed the digest and size check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator, Sequence

import docker
import docker.errors
import httpx
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import DeviceRequest, LogConfig

from harness.profile import Profile
from harness.sandbox_errors import ContainerDied, ImageRejected, StartupTimeout
from harness.sandbox_image import check_manifest, parse_ref

__all__ = [
    "LABEL",
    "OWNER_LABEL",
    "SERVE_PORT",
    "Sandbox",
    "classify_exit",
    "gpu_requests",
    "owner_id",
    "pull_pinned",
    "remove_leftovers",
    "sigterm_raises",
    "MAX_LOG_BYTES",
    "SANDBOX_USER",
    "TMPFS_SIZE",
]

LABEL = "org.arena.sandbox"
# ``host:pid`` of the process that started a sandbox: only orphans of dead owners are swept.
OWNER_LABEL = "org.arena.owner"
# Every server in the arena listens here: OpenAI API plus GET /health.
SERVE_PORT = 8000
MAX_LOG_BYTES = 256 * 1024
# nobody:nogroup; the weights are world-readable, nothing else on the root needs writing.
SANDBOX_USER = "65534:65534"
TMPFS_SIZE = "2g"
_HEALTH_POLL_S = 0.5


def pull_pinned(client: docker.DockerClient, ref: str, profile: Profile) -> str:
    """Check the manifest, then pull ``ref`` by digest; returns the local image id.

    Raises :class:`ImageRejected` for anything the submission is to blame for (not pinned,
    unknown or mismatching digest, too large, a layer that fails verification).
    """
    image_ref = parse_ref(ref)
    check_manifest(image_ref, profile.max_image_bytes)
    try:
        for message in client.api.pull(
            image_ref.name, tag=image_ref.digest, stream=True, decode=True
        ):
            error = message.get("error") or message.get("errorDetail", {}).get("message")
            if error:
                reason = "layer_corrupt" if "verification failed" in error else "pull_failed"
                raise ImageRejected(reason, f"pulling {ref} failed: {error}")
    except docker.errors.APIError as exc:
        raise ImageRejected("pull_failed", f"pulling {ref} failed: {exc.explanation}") from exc
    try:
        image = client.images.get(image_ref.pinned)
    except docker.errors.ImageNotFound as exc:
        raise ImageRejected("pull_failed", f"{ref} is not present after its pull") from exc
    if image_ref.pinned not in image.attrs.get("RepoDigests", []):
        raise ImageRejected("digest_mismatch", f"the engine does not list {ref} as pulled")
    return image.id


def classify_exit(exit_code: int, oom_killed: bool, logs: str) -> str:
    """Reason code for a container that exited on its own, from what the engine saw."""
    if oom_killed or exit_code == 137:
        return "oom"
    if "/models" in logs and ("Read-only file system" in logs or "Permission denied" in logs):
        return "write_models"
    return "crash"


def gpu_requests(count: int) -> list[DeviceRequest]:
    """The GPUs a container gets: the ones Ray gave this process if it says, else any ``count``."""
    if not count:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [gpu for gpu in visible.split(",") if gpu.strip()]
    if ids:
        return [DeviceRequest(device_ids=ids[:count], capabilities=[["gpu"]])]
    return [DeviceRequest(count=count, capabilities=[["gpu"]])]


class Sandbox(contextlib.AbstractContextManager["Sandbox"]):
    """One sandboxed container and its private network; removed on exit, whatever happened."""

    def __init__(
        self,
        client: docker.DockerClient,
        image_id: str,
        profile: Profile,
        *,
        name: str,
        model_dir: str | None = None,
        command: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.image_id = image_id
        self.profile = profile
        self.name = f"arena-{name}-{uuid.uuid4().hex[:6]}"
        self.model_dir = model_dir or profile.model_dir
        self.command = list(command) or None  # None: the image's own command
        self.network: Network | None = None
        self.container: Container | None = None
        self.ip = ""
        self.logs = ""

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{SERVE_PORT}"

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        labels = {LABEL: self.name, OWNER_LABEL: owner_id()}
        self.network = self.client.networks.create(
            self.name, driver="bridge", internal=True, labels=labels
        )
        profile = self.profile
        self.container = self.client.containers.create(
            self.image_id,
            self.command,
            name=self.name,
            labels=labels,
            network=self.network.name,
            user=SANDBOX_USER,
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_SIZE}"},
            volumes={self.model_dir: {"bind": "/models", "mode": "ro"}},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=profile.pids_limit,
            mem_limit=profile.memory_limit,
            memswap_limit=profile.memory_limit,  # no swap: memory limit is the real limit
            nano_cpus=int(profile.cpus * 1e9),
            cpuset_cpus=profile.server_cpuset or None,
            shm_size=profile.shm_size,
            init=True,
            device_requests=gpu_requests(profile.gpus_per_container),
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
        )
        self.container.start()
        self.container.reload()
        self.ip = self.container.attrs["NetworkSettings"]["Networks"][self.network.name][
            "IPAddress"
        ]

    def wait_healthy(self) -> None:
        """Poll ``/health`` until 200; raise if the container dies or the startup timeout ends."""
        assert self.container is not None, "wait_healthy() needs an entered Sandbox"
        deadline = time.monotonic() + self.profile.startup_timeout_s
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(_HEALTH_POLL_S)
        self.check_alive()
        self.logs = self.read_logs()
        raise StartupTimeout(
            "fork_bomb" if self.at_pids_limit() else "unhealthy",
            f"{self.name} did not answer /health within {self.profile.startup_timeout_s:.0f} s",
            self.logs,
        )

    def check_alive(self) -> None:
        """Raise :class:`ContainerDied` if the container has exited (or is fork-bombing)."""
        assert self.container is not None
        self.container.reload()
        state = self.container.attrs["State"]
        if state["Status"] in ("running", "created"):
            if self.at_pids_limit():
                self.logs = self.read_logs()
                raise ContainerDied(
                    "fork_bomb",
                    f"{self.name} reached its limit of {self.profile.pids_limit} processes",
                    self.logs,
                )
            return
        self.logs = self.read_logs()
        exit_code = int(state.get("ExitCode", -1))
        oom = bool(state.get("OOMKilled", False))
        raise ContainerDied(
            classify_exit(exit_code, oom, self.logs),
            f"{self.name} exited with code {exit_code}" + (" (out of memory)" if oom else ""),
            self.logs,
            exit_code=exit_code,
            oom_killed=oom,
        )

    def at_pids_limit(self) -> bool:
        assert self.container is not None
        try:
            stats = self.container.stats(stream=False, one_shot=True)
        except docker.errors.APIError:
            return False
        return int(stats.get("pids_stats", {}).get("current", 0)) >= self.profile.pids_limit

    def read_logs(self) -> str:
        """The last :data:`MAX_LOG_BYTES` of the container's stdout and stderr."""
        if self.container is None:
            return self.logs
        try:
            raw = self.container.logs(stdout=True, stderr=True, tail=2000)
        except docker.errors.APIError:
            return self.logs
        return raw[-MAX_LOG_BYTES:].decode(errors="replace")

    def close(self) -> None:
        """Keep the logs, then force-remove the container and its network (idempotent)."""
        if self.container is not None:
            self.logs = self.read_logs() or self.logs
            _force_remove(self.container)
            self.container = None
        if self.network is not None:
            with contextlib.suppress(docker.errors.NotFound):
                self.network.remove()
            self.network = None


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's, or not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _force_remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: a removal is already in progress
            raise


def remove_leftovers(client: docker.DockerClient) -> int:
    """Remove sandboxes whose owning process on this host is gone (an evaluator that crashed).

    Sandboxes of live processes (another eval on a shared development machine) are left alone.
    """
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if not _owner_alive(container.labels.get(OWNER_LABEL, "")):
            _force_remove(container)
            removed += 1
    for network in client.networks.list(filters={"label": LABEL}):
        network.reload()
        if not network.containers and not _owner_alive(
            network.attrs["Labels"].get(OWNER_LABEL, "")
        ):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
                removed += 1
    return removed


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into ``KeyboardInterrupt`` so ``with Sandbox(...)`` blocks unwind and clean up.

    Only the main thread may set signal handlers; elsewhere this is a no-op.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
