"""A local vLLM CPU server for the tiny model: what the tests' shared server and the benches run.

server = start_vllm()                      # eager, model seed 0; returns once /health is 200
server = start_vllm(seed=7, eager=False)   # another model, or compiled mode
server.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.profile import get_profile
from harness.tiny_model import DEFAULT_SEED, ensure_built

__all__ = [
    "MAX_LOGPROBS",
    "MAX_MODEL_LEN",
    "SERVED_MODEL_NAME",
    "STARTUP_TIMEOUT_S",
    "VllmServer",
    "free_port",
    "model_dir_for",
    "start_vllm",
]

SERVED_MODEL_NAME = "arena-tiny"
STARTUP_TIMEOUT_S = 300.0
MAX_MODEL_LEN = 1024
# The gate asks for one prompt logprob per position; loadgen for one top logprob per token.
MAX_LOGPROBS = 20


@dataclass
class VllmServer:
    url: str
    model_dir: Path
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        """Stop this server's process group (vLLM spawns an engine-core child)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_dir_for(seed: int) -> Path:
    default = Path(get_profile("local").model_dir)
    out = default if seed == DEFAULT_SEED else default.with_name(f"tiny-seed{seed}")
    return ensure_built(out, seed)


def start_vllm(
    *,
    seed: int = DEFAULT_SEED,
    eager: bool = True,
    cores: set[int] | None = None,
) -> VllmServer:
    """Start a vLLM CPU server for the tiny model of ``seed``; returns once /health is 200.

    ``cores`` pins the server (its engine-core child inherits the pinning).
    """
    model_dir = model_dir_for(seed)
    port = free_port()
    env = {
        **os.environ,
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        # As in images/baseline: the model runs in the engine-core process (the uni executor,
        # which vLLM CPU keeps only with this variable at 0) on one unpinned OpenMP thread.
        # vLLM's default adds a third, worker process pinned to core 0.
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "1",
    }
    args = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        SERVED_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-logprobs",
        str(MAX_LOGPROBS),
        "--dtype",
        "float32",
        "--disable-log-stats",
        "--distributed-executor-backend",
        "uni",
        "--uvicorn-log-level",
        "warning",
    ]
    if eager:
        args.append("--enforce-eager")
    if cores is not None:
        args = ["taskset", "-c", ",".join(map(str, sorted(cores))), *args]
    fd, log_name = tempfile.mkstemp(prefix=f"vllm-{port}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = VllmServer(f"http://127.0.0.1:{port}", model_dir, process, Path(log_name))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"vLLM exited with {process.returncode} during startup; log: {log_name}\n"
                + Path(log_name).read_text()[-3000:]
            )
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling interval of a deadline-bounded wait
    server.stop()
    raise RuntimeError(f"vLLM not healthy within {STARTUP_TIMEOUT_S:.0f} s; log: {log_name}")
