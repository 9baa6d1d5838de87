"""Every reason code Arena records, in one place: the words that end up in ``EvalFinished.reason``,
``SubmissionSkipped.reason`` and ``OrganicChecked.reason``, as ``Literal`` types.

Code that produces a reason annotates it with one of these, so a misspelt or new code shows up
here, once, with its meaning.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "REGISTRY_FAULTS",
    "ContainerFailure",
    "GateReason",
    "ImageRefusal",
    "OrganicReason",
    "RequestFailure",
    "SandboxReason",
    "StreamReason",
    "Verdict",
]

# An evaluation's outcome: ``error`` is the validator's own trouble, never the miner's fault.
Verdict = Literal["pass", "fail", "error"]

# Why an image was refused before any container ran (harness.sandbox_image, harness.runner).
ImageRefusal = Literal[
    "not_pinned",  # not a reference pinned by sha256 digest (rules.image_ref)
    "manifest_not_found",  # the registry has no manifest at that digest
    "config_not_found",  # the manifest names a config blob the registry does not have
    "digest_mismatch",  # the bytes served do not hash to the pinned digest
    "too_large",  # config plus layers exceed the profile's image size limit
    "bad_manifest",  # a manifest that is not one (no sizes, no linux/amd64 image...)
    "bad_config",  # an image config that is not one
    "registry_unreachable",  # no complete answer from the registry in time
    "registry_error",  # the registry answered with an unexpected status
    "pull_failed",  # the engine could not pull the image
    "layer_corrupt",  # a layer failed the engine's verification
]
# Refusals that blame the registry's answer, not the pinned image: asking again may succeed.
# Every other refusal is final for that digest.
REGISTRY_FAULTS: frozenset[ImageRefusal] = frozenset({"registry_unreachable", "registry_error"})

# Why a running container was stopped (harness.runner).
ContainerFailure = Literal[
    "oom",  # killed for memory (or exit 137)
    "write_models",  # tried to write the read-only model mount
    "crash",  # exited on its own
    "fork_bomb",  # reached its process limit
    "unhealthy",  # never answered /health within the startup timeout
]
SandboxReason = ImageRefusal | ContainerFailure

# Why a challenger's request failed, from its error and its logs (harness.eval).
RequestFailure = Literal["network", "hang", "request_failed"]

# A streamed answer no honest OpenAI-compatible server would send (harness.sse).
StreamReason = Literal[
    "malformed_event",  # not `data: <json>`, or JSON that is not a chat-completion chunk
    "error_event",  # the server reported an error inside a 200 stream
    "missing_logprobs",  # content without one logprobs entry per token
    "bad_token_id",  # a logprobs token that is not `token_id:N`
    "data_after_done",  # events after `data: [DONE]`
    "missing_done",  # the stream closed without `data: [DONE]`
]

# The correctness gate's verdict (harness.gate); ``ok`` on a pass.
GateReason = Literal[
    "ok",
    "request_failed",
    "malformed_stream",
    "hang",
    "truncated",
    "too_many_tokens",
    "buffered_stream",
    "text_mismatch",
    "off_distribution",
    "fabricated_logprobs",
    "exact_match_floor",
]

# An organic check of the king's answer (serve_apps.organic_check); ``ok`` when it passed.
OrganicReason = Literal["ok", "off_argmax", "improbable"]
