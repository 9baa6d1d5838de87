"""Profiles: the only thing that differs between a laptop-class machine and a 4xH200 cluster.

Everything else (harness, runner, actors) reads its sizes, images and resources from here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec

__all__ = ["PROFILES", "Profile", "built_image", "get_profile", "repo_root", "resolve_profile"]


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    # Host directory holding the model weights; mounted read-only at /models in every container.
    model_dir: str
    # sha256 of every file model_dir must hold (harness.weights); no measurement starts while it
    # differs. "" for none: the local tiny model is built on this machine from a fixed seed.
    model_manifest: str
    # Name the OpenAI API serves the model under; every server in the arena must answer to it.
    served_model_name: str
    # The reference every challenger is measured against, pinned by digest; on sn-h200 the
    # operator gives it (``--baseline-image`` or validator.toml), checked by
    # harness.sandbox_image.require_pinned_baseline.
    baseline_image: str
    # Ray resources the Evaluator actor asks for; a request no node can satisfy pends, which is
    # what makes the autoscaler start a GPU node.
    evaluator_num_gpus: int
    evaluator_resources: dict[str, float]
    accelerator_type: str | None
    gpus_per_container: int
    max_image_bytes: int
    # Load shape of one measurement.
    num_prompts: int
    warmup_requests: int
    concurrency_levels: tuple[int, ...]
    # Each level is sent this many times and its least-disturbed pass counts (harness.measure):
    # on a shared machine, interference only ever slows a pass down.
    passes: int
    input_tokens: int
    output_tokens: int
    # Timeouts, which scale with the model: how long a server may take to answer /health after
    # its start (loading the weights), to finish one answer, and to stay silent mid-stream
    # before the request counts as hung (the warm-up allows the whole request timeout: an
    # honest engine compiles kernels on its first request).
    startup_timeout_s: float
    request_timeout_s: float
    stall_timeout_s: float
    # Sandbox limits.
    memory_limit: str
    pids_limit: int
    cpus: float
    # Host CPUs every sandboxed server is pinned to ("" for no pinning). The measuring client
    # keeps the others: a server under test that burns every core starves the client, whose
    # timings then describe itself (harness.gate's starved-client rule), not the server.
    server_cpuset: str
    shm_size: str
    # Chain blocks after the last round opened at which a round opens for the king alone, when no
    # challenger came: the king is measured again on fresh prompts at least this often.
    remeasure_every_blocks: int
    # The least score a measurement on this hardware can tell from noise: a crown needs more.
    # One B/B' pair alone is a weak estimate (harness.score.score), so an A/A challenger (the
    # baseline image itself) would beat it about one round in four.
    noise_floor: float
    # vLLM engine flags of this profile's reference engine, beyond the model, its name, the
    # address and tensor parallelism (one per GPU of gpus_per_container): the reference miner
    # (serve_apps.miner, images/miner-gpu) runs with exactly these, and so does a stock-vLLM
    # baseline through baseline_command.
    engine_flags: tuple[str, ...] = ()
    # Arguments for the baseline image when its default command does not serve /models on
    # port 8000 as served_model_name (stock vLLM images need them; the local one does not).
    baseline_command: tuple[str, ...] = ()

    # Whether the baseline stays up beside each challenger for the whole round: only where the
    # evaluator holds GPUs for both (8 for two 4-GPU engines) or needs none. Otherwise it is
    # stopped while each challenger runs and started again to be measured after it.
    baseline_stays_up: bool = True
    # How many challengers are measured in a row between two baseline measurements: each is
    # still bracketed by one before and one after it (B0, C1, C2, B1, C3, C4, B2, ... for two).
    # More split the baseline's share of a round, on a 4xH200 node a 72B start-up and a
    # 30-minute measurement per bracket, among more challengers. Drift over a longer bracket
    # cannot crown anyone: it shows as noise between the bracket's two baseline measurements,
    # which a crown must beat; it can only hide a real gain smaller than it.
    challengers_per_baseline: int = 1

    def __post_init__(self) -> None:
        if self.challengers_per_baseline < 1:
            raise ValueError(
                f"profile {self.name}: challengers_per_baseline must be at least 1, "
                f"not {self.challengers_per_baseline}"
            )
        if self.baseline_stays_up and self.evaluator_num_gpus < 2 * self.gpus_per_container:
            raise ValueError(
                f"profile {self.name}: a baseline kept up beside a challenger needs "
                f"{2 * self.gpus_per_container} GPUs, the evaluator holds "
                f"{self.evaluator_num_gpus}; set baseline_stays_up=False"
            )


def built_image(name: str) -> str:
    """The pinned reference ``scripts/build_images.sh`` recorded for the local image ``name``."""
    built = repo_root() / ".cache" / "images.json"
    refs = json.loads(built.read_text()) if built.exists() else {}
    return refs.get(name, f"127.0.0.1:5000/arena/{name} (not built: run scripts/build_images.sh)")


def _server_cores() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def _server_cpuset() -> str:
    # Core 0 stays the client's; on 2 cores the reference miner's Ray processes otherwise left
    # the client waiting for a CPU through most of each answer (bench/integrity).
    cores = os.cpu_count() or 1
    return f"1-{cores - 1}" if cores > 1 else ""


def _local() -> Profile:
    return Profile(
        name="local",
        model_dir=str(repo_root() / ".cache" / "models" / "tiny"),
        model_manifest="",
        served_model_name="arena-tiny",
        baseline_image=built_image("baseline"),
        evaluator_num_gpus=0,
        evaluator_resources={"arena_eval_slot": 1},
        accelerator_type=None,
        gpus_per_container=0,
        max_image_bytes=20 * 1024**3,
        num_prompts=16,
        warmup_requests=2,
        concurrency_levels=(1, 4),
        passes=3,
        input_tokens=64,
        output_tokens=32,
        startup_timeout_s=300.0,
        request_timeout_s=60.0,
        stall_timeout_s=10.0,
        memory_limit="6g",
        pids_limit=512,
        cpus=float(_server_cores()),
        server_cpuset=_server_cpuset(),
        shm_size="1g",
        # The local chain (chopsticks, instant mode) builds a block only per extrinsic: a round
        # adds one or two (weights), so 100 opens no round a demo or test did not ask for; a
        # test that wants one jumps the chain (chain.localnet.jump_blocks).
        remeasure_every_blocks=100,
        # A baseline measurement takes seconds here: two a bracket keep several noise pairs per
        # round and put a bracket of several challengers through every test on real parts.
        challengers_per_baseline=2,
        # bench/integrity on this 2-core VM: the A/A challenger scored up to NOISE_A_A against
        # a B/B' noise of ...; the honest fast miner scores ~1.4-3.2.
        noise_floor=0.3,
        # The local baseline image's own flags (images/baseline/serve-baseline.sh), so the
        # reference miner starts level with it, and a fixed 1 GiB KV cache (the baseline sets
        # the same with VLLM_CPU_KVCACHE_SPACE=1): vLLM's default reserves a fraction of all host
        # memory and refuses to start on a shared machine.
        engine_flags=(
            "--enforce-eager",
            "--max-num-seqs",
            "1",
            "--dtype",
            "float32",
            "--max-model-len",
            "1024",
            "--max-logprobs",
            "20",
            "--disable-log-stats",
            "--kv-cache-memory-bytes",
            str(1024**3),
        ),
    )


def _sn_h200() -> Profile:
    engine_flags = (
        # The model's full context; bf16 weights (about 36 GB a GPU at tensor parallel 4) leave
        # most of each H200's 141 GB to the KV cache.
        "--max-model-len",
        "32768",
        "--gpu-memory-utilization",
        "0.90",
        # Qwen2.5's generation_config.json sets repetition_penalty 1.05 (and sampling defaults),
        # which vLLM would otherwise apply to every request that does not override it: greedy
        # answers would then differ from the argmax the gate re-scores by teacher forcing.
        "--generation-config",
        "vllm",
        # The gate asks for prompt logprobs and the load generator for top logprobs.
        "--max-logprobs",
        "20",
        "--disable-log-stats",
    )
    return Profile(
        name="sn-h200",
        model_dir="/mnt/models/Qwen2.5-72B-Instruct",
        # Built once by the operator from a trusted copy (README: Weights on a GPU node); the
        # GPU node's set-up syncs model_dir against it (cluster.yaml).
        model_manifest=str(repo_root() / "models" / "Qwen2.5-72B-Instruct.sha256.json"),
        served_model_name="Qwen/Qwen2.5-72B-Instruct",
        # No default: which vLLM release the subnet measures against is the operator's choice,
        # pinned by digest (README, "Pinning the baseline").
        baseline_image="",
        evaluator_num_gpus=4,
        evaluator_resources={},
        accelerator_type="H200",
        gpus_per_container=4,
        max_image_bytes=20 * 1024**3,
        num_prompts=256,
        warmup_requests=8,
        concurrency_levels=(1, 32),
        passes=1,  # a dedicated node: nothing else competes for it
        input_tokens=1024,
        output_tokens=256,
        # 140 GB of weights from local disk over 4 GPUs, then CUDA graph capture.
        startup_timeout_s=1800.0,
        request_timeout_s=300.0,
        # At 32 concurrent 1024-token prompts, an honest engine's longest pause in one stream
        # is a few batched prefills (well under a second each on an H200); 30 s is far above.
        stall_timeout_s=30.0,
        memory_limit="512g",
        pids_limit=4096,
        cpus=64.0,
        server_cpuset="",  # a GPU node has cores to spare for the client
        shm_size="64g",
        baseline_stays_up=False,  # four GPUs hold one 72B engine at a time
        # A whole default round (challengers_per_round, 4) in one bracket: the baseline's share
        # of a challenger is a 72B start-up and a 30-minute measurement split four ways, and
        # a fifth bracket member would save under a tenth more (bench.round's cost model).
        challengers_per_baseline=4,
        # 1800 blocks of 12 s: a king that won on luck or on one prompt set holds the emission
        # for at most about 6 hours, and a re-measurement (an hour of the 4xH200 node) costs
        # a sixth of the node's time when no challenger comes.
        remeasure_every_blocks=1800,
        # A dedicated node measures far more steadily than a shared 2-core VM; audits of a live
        # inference subnet found 0.9-2.7% bias between two arms of the same server, so a crown
        # must beat 3%.
        noise_floor=0.03,
        engine_flags=engine_flags,
        baseline_command=(
            "--model",
            "/models",
            "--served-model-name",
            "Qwen/Qwen2.5-72B-Instruct",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--tensor-parallel-size",
            "4",
            *engine_flags,
        ),
    )


def _sn_h200x8() -> Profile:
    # An 8xH200 node: the baseline keeps four GPUs for the whole round and never reloads.
    return msgspec.structs.replace(
        _sn_h200(), name="sn-h200x8", evaluator_num_gpus=8, baseline_stays_up=True
    )


PROFILES = {"local": _local, "sn-h200": _sn_h200, "sn-h200x8": _sn_h200x8}


def get_profile(name: str) -> Profile:
    """The profile ``name`` as shipped (see :func:`resolve_profile` for a site's own paths)."""
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None


def resolve_profile(
    name: str, *, baseline_image: str = "", model_dir: str = "", model_manifest: str = ""
) -> Profile:
    """The profile ``name`` with what a site sets itself (each left as shipped when empty).

    Called once, where settings enter (the CLI, a Serve builder); the result travels as data.
    """
    site = dict(baseline_image=baseline_image, model_dir=model_dir, model_manifest=model_manifest)
    return msgspec.structs.replace(get_profile(name), **{k: v for k, v in site.items() if v})
