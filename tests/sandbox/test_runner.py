"""The sandbox itself: its limits, its network, its clean-up (also on SIGTERM and after a crash)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from harness.profile import Profile
from harness.runner import (
    LABEL,
    OWNER_LABEL,
    SANDBOX_ENV,
    Sandbox,
    pull_pinned,
    remove_leftovers,
)

pytestmark = pytest.mark.docker


def test_sandbox_is_locked_down_and_reachable(
    adversary_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    image_id = pull_pinned(docker_client, built_images["adv-hang"], adversary_profile)
    with Sandbox(docker_client, image_id, adversary_profile, name="test-locked") as box:
        box.wait_healthy()  # reachable from the host over its internal network
        assert box.container is not None and box.network is not None
        host = box.container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] and host["Init"]
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["PidsLimit"] == adversary_profile.pids_limit
        assert host["Memory"] == host["MemorySwap"] == 256 * 1024**2
        assert host["NanoCpus"] == int(adversary_profile.cpus * 1e9)
        (mount,) = box.container.attrs["Mounts"]
        assert (mount["Destination"], mount["RW"]) == ("/models", False)
        assert box.network.attrs["Internal"]

        def run(code: str) -> int:
            return box.container.exec_run(["python3.11", "-c", code]).exit_code

        assert run("open('/tmp/scratch', 'w').write('ok')") == 0
        assert run("open('/etc/owned', 'w')") != 0
        assert run("open('/models/owned', 'w')") != 0
        assert run("import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)") != 0
    assert box.container is None and box.network is None


def test_any_image_gets_writable_home_and_caches_and_nothing_else(
    adversary_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    # adv-hang is the bare OS image plus a script: it sets none of the contract itself, like a
    # stock image that was never built for this sandbox.
    image_id = pull_pinned(docker_client, built_images["adv-hang"], adversary_profile)
    assert "HOME=/tmp" not in docker_client.images.get(image_id).attrs["Config"]["Env"]
    dirs = sorted({v for k, v in SANDBOX_ENV.items() if k.endswith(("HOME", "_DIR", "_ROOT",
                   "_PATH", "TMPDIR"))})  # fmt: skip
    assert len(dirs) >= 12  # HOME, XDG, vLLM, Triton, inductor, CUDA, HF, ...
    check = (
        "import os, sys\n"
        "for d in sys.argv[1:]:\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(os.path.join(d, 'probe'), 'w').write('ok')\n"
        "assert os.environ['HF_HUB_OFFLINE'] == '1' and os.path.expanduser('~') == '/tmp'\n"
    )
    with Sandbox(docker_client, image_id, adversary_profile, name="test-contract") as box:
        box.wait_healthy()
        assert box.container is not None

        def run(*argv: str) -> int:
            return box.container.exec_run(["python3.11", "-c", *argv]).exit_code

        assert run(check, *dirs) == 0
        for elsewhere in ("/home/probe", "/root/probe", "/opt/probe", "/var/tmp/probe"):
            assert run(f"open({elsewhere!r}, 'w')") != 0, elsewhere


def test_leftovers_of_dead_owners_are_swept_and_live_ones_kept(
    adversary_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    image_id = pull_pinned(docker_client, built_images["adv-hang"], adversary_profile)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    host = os.uname().nodename
    orphan = docker_client.containers.create(
        image_id, labels={LABEL: "test-orphan", OWNER_LABEL: f"{host}:{dead}"}
    )
    with Sandbox(docker_client, image_id, adversary_profile, name="test-live") as live:
        remove_leftovers(docker_client)
        assert live.container is not None
        live.container.reload()  # still there: its owner (this process) is alive
        with pytest.raises(docker.errors.NotFound):
            orphan.reload()


def test_sigterm_during_startup_removes_the_sandbox(
    adversary_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    image_id = pull_pinned(docker_client, built_images["adv-unhealthy"], adversary_profile)
    script = (
        "import docker, msgspec, sys\n"
        "from harness.profile import get_profile\n"
        "from harness.runner import Sandbox, sigterm_raises\n"
        "profile = msgspec.structs.replace(get_profile('local'), model_dir=sys.argv[2],"
        " startup_timeout_s=600.0)\n"
        "with sigterm_raises(), Sandbox(docker.from_env(), sys.argv[1], profile, name='sigterm')"
        " as box:\n"
        "    print(box.name, flush=True)\n"
        "    box.wait_healthy()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, image_id, adversary_profile.model_dir],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    name = child.stdout.readline().strip()
    assert docker_client.containers.get(name).status in ("created", "running")
    child.terminate()
    assert child.wait(timeout=60) != 0
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
    assert not docker_client.networks.list(names=[name])
