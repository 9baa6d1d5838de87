"""Run one untrusted server image in a sandbox and hand back its URL; always clean up.

    image = pull_pinned(client, "127.0.0.1:5000/arena/x@sha256:...", profile)
    with Sandbox(client, image, profile, name="eval-42-challenger") as box:
        box.wait_healthy()
        ... measure box.url ...
    box.logs                                   # bounded tail, kept after removal

The container gets: the weights read-only at ``/models``, its own ``internal`` bridge network
(no route out; the host reaches it at its address on that bridge), a read-only root with a tmpfs
``/tmp`` that holds HOME and every cache (:data:`SANDBOX_ENV`), no capabilities,
``no-new-privileges``, pids/memory/CPU/shm limits, ``init`` as PID 1, an unprivileged user, GPUs
only when the profile asks for them, the profile's CPUs (pinned, so the measuring client keeps a
core of its own), and bounded logs. Everything it
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
import msgspec
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import DeviceRequest, LogConfig

from harness.profile import Profile
from harness.sandbox_errors import ContainerDied, ImageRejected, StartupTimeout
from harness.sandbox_image import check_manifest, parse_ref

__all__ = [
    "LABEL",
    "MODELS_PATH",
    "OWNER_LABEL",
    "SANDBOX_ENV",
    "SERVE_PORT",
    "ContainerSpec",
    "Listed",
    "Sandbox",
    "assigned_gpus",
    "classify_exit",
    "container_spec",
    "gpu_requests",
    "owner_id",
    "pull_pinned",
    "remove_leftovers",
    "sandboxes",
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
MODELS_PATH = "/models"
# nobody:nogroup; the weights are world-readable, nothing else on the root needs writing.
SANDBOX_USER = "65534:65534"
TMPFS_SIZE = "2g"
# What any OpenAI-compatible image (a stock vLLM one included) needs to start as SANDBOX_USER on
# a read-only root, given alike to the baseline and every challenger: HOME and every cache that
# vLLM, PyTorch, Triton, CUDA and Hugging Face write to lie on the /tmp tmpfs, and nothing
# reaches for the network (the weights are at /models; there is no route out anyway).
SANDBOX_ENV = {
    "HOME": "/tmp",
    "USER": "nobody",  # getpass.getuser() fails for a uid with no passwd entry
    "TMPDIR": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "XDG_CONFIG_HOME": "/tmp/.config",
    "XDG_DATA_HOME": "/tmp/.local/share",
    "XDG_STATE_HOME": "/tmp/.local/state",
    "VLLM_CACHE_ROOT": "/tmp/.cache/vllm",
    "VLLM_CONFIG_ROOT": "/tmp/.config/vllm",
    "TRITON_CACHE_DIR": "/tmp/.cache/triton",
    "TORCHINDUCTOR_CACHE_DIR": "/tmp/.cache/torchinductor",
    "CUDA_CACHE_PATH": "/tmp/.cache/nv",
    "NUMBA_CACHE_DIR": "/tmp/.cache/numba",
    "OUTLINES_CACHE_DIR": "/tmp/.cache/outlines",
    "HF_HOME": "/tmp/.cache/huggingface",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
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


def assigned_gpus() -> tuple[str, ...]:
    """The GPU ids Ray assigned this process (it sets ``CUDA_VISIBLE_DEVICES``); () if none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return tuple(gpu.strip() for gpu in visible.split(",") if gpu.strip())


def gpu_requests(
    count: int, first: int = 0, ids: Sequence[str] | None = None
) -> list[DeviceRequest]:
    """The ``count`` GPUs from index ``first`` of those Ray gave this process (or of the node's).

    ``ids`` are the GPUs Ray assigned (default: :func:`assigned_gpus`). A baseline kept up
    beside a challenger holds the first ``count`` and the challenger the next
    (``Profile.baseline_stays_up``): two engines on the same GPUs run each other out of memory.
    """
    if not count:
        return []
    ids = list(assigned_gpus() if ids is None else ids)
    if not ids and not first:
        return [DeviceRequest(count=count, capabilities=[["gpu"]])]
    ids = ids or [str(i) for i in range(first + count)]
    chosen = ids[first : first + count]
    if len(chosen) < count:
        raise ValueError(
            f"GPUs {first}..{first + count - 1} asked for, but this process was given {ids}: "
            "give the evaluator the profile's evaluator_num_gpus"
        )
    return [DeviceRequest(device_ids=chosen, capabilities=[["gpu"]])]


class ContainerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a sandboxed container is started with, as plain data.

    :class:`Sandbox` starts containers from exactly this (:meth:`create_kwargs`), and
    ``python -m harness.eval --dry-run`` prints it, so the dry run shows what would run.
    """

    image: str
    command: tuple[str, ...] | None  # None: the image's own command
    user: str
    env: dict[str, str]
    read_only_root: bool
    tmpfs: dict[str, str]
    # host directory -> (container path, "ro" or "rw")
    mounts: dict[str, tuple[str, str]]
    # A bridge network of the container's own; internal: no route out, the host reaches it.
    network_driver: str
    network_internal: bool
    cap_drop: tuple[str, ...]
    security_opt: tuple[str, ...]
    init: bool
    pids_limit: int
    memory: str  # also the memory+swap limit: no swap
    cpus: float
    cpuset: str  # "" for no pinning
    shm_size: str
    # Docker's DeviceRequests as the engine API takes them: the GPUs, by id where Ray gave ids.
    device_requests: tuple[dict[str, object], ...]
    log_max_size: str

    def create_kwargs(self, *, name: str, labels: dict[str, str], network: str) -> dict:
        """Keyword arguments of ``client.containers.create`` for this spec."""
        return {
            "image": self.image,
            "command": list(self.command) if self.command is not None else None,
            "name": name,
            "labels": labels,
            "network": network,
            "user": self.user,
            "environment": dict(self.env),
            "read_only": self.read_only_root,
            "tmpfs": dict(self.tmpfs),
            "volumes": {
                host: {"bind": at, "mode": mode} for host, (at, mode) in self.mounts.items()
            },
            "cap_drop": list(self.cap_drop),
            "security_opt": list(self.security_opt),
            "pids_limit": self.pids_limit,
            "mem_limit": self.memory,
            "memswap_limit": self.memory,
            "nano_cpus": int(self.cpus * 1e9),
            "cpuset_cpus": self.cpuset or None,
            "shm_size": self.shm_size,
            "init": self.init,
            "device_requests": [DeviceRequest(**r) for r in self.device_requests],
            "log_config": LogConfig(
                type="json-file", config={"max-size": self.log_max_size, "max-file": "1"}
            ),
        }


def container_spec(
    profile: Profile,
    image: str,
    *,
    command: Sequence[str] = (),
    model_dir: str | None = None,
    gpu_ids: Sequence[str] = (),
    gpu_slot: int = 0,
) -> ContainerSpec:
    """The one place a sandboxed container's settings are decided, for baseline and challenger.

    ``gpu_ids`` are the GPUs Ray assigned the evaluator (:func:`assigned_gpus`); the container
    gets block ``gpu_slot`` of ``profile.gpus_per_container`` of them (:func:`gpu_requests`).
    """
    count = profile.gpus_per_container
    gpus = gpu_requests(count, gpu_slot * count, gpu_ids)
    return ContainerSpec(
        image=image,
        command=tuple(command) or None,
        user=SANDBOX_USER,
        env=dict(SANDBOX_ENV),
        read_only_root=True,
        tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_SIZE}"},
        mounts={model_dir or profile.model_dir: (MODELS_PATH, "ro")},
        network_driver="bridge",
        network_internal=True,
        cap_drop=("ALL",),
        security_opt=("no-new-privileges",),
        init=True,
        pids_limit=profile.pids_limit,
        memory=profile.memory_limit,
        cpus=profile.cpus,
        cpuset=profile.server_cpuset,
        shm_size=profile.shm_size,
        device_requests=tuple(dict(request) for request in gpus),
        log_max_size="10m",
    )


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
        gpu_slot: int = 0,
    ) -> None:
        self.client = client
        self.profile = profile
        self.name = f"arena-{name}-{uuid.uuid4().hex[:6]}"
        self.spec = container_spec(
            profile,
            image_id,
            command=command,
            model_dir=model_dir,
            gpu_ids=assigned_gpus(),
            gpu_slot=gpu_slot,
        )
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
            self.name,
            driver=self.spec.network_driver,
            internal=self.spec.network_internal,
            labels=labels,
        )
        self.container = self.client.containers.create(
            **self.spec.create_kwargs(name=self.name, labels=labels, network=self.network.name)
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
            _force_remove(self.client, self.container.id)
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


def _force_remove(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: a removal is already in progress
            raise


class Listed(msgspec.Struct, frozen=True, kw_only=True):
    """One sandbox as the engine lists it."""

    name: str
    id: str
    labels: dict[str, str]


def sandboxes(client: docker.DockerClient) -> list[Listed]:
    """Every sandbox on this engine, running or not."""
    # Sparse: the full listing inspects each container and fails on one removed meanwhile, such
    # as another evaluation's sandbox going away on the same node.
    listed = client.containers.list(all=True, sparse=True, filters={"label": LABEL})
    return [
        Listed(name=c.attrs["Names"][0].lstrip("/"), id=c.id, labels=c.attrs.get("Labels") or {})
        for c in listed
    ]


def remove_leftovers(client: docker.DockerClient) -> int:
    """Remove sandboxes whose owning process on this host is gone (an evaluator that crashed).

    Sandboxes of live processes (another eval on a shared development machine) are left alone.
    """
    removed = 0
    for box in sandboxes(client):
        if not _owner_alive(box.labels.get(OWNER_LABEL, "")):
            _force_remove(client, box.id)
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
