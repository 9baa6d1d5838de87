"""The gateway's settings: one schema for the Serve builder's arguments, validator.toml's
``[gateway]`` table and tests (no Serve or Starlette imports, so the validator's config can
hold it).
"""

from typing import Annotated

import msgspec

from serve_apps.keys import DEFAULT_KEYS_FILE

__all__ = ["GatewayConfig"]


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Where requests go while no king serves, and when every king fails.
    reference_endpoint: str
    keys_file: str = DEFAULT_KEYS_FILE
    served_model_name: str = "arena-tiny"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1 << 20
    connect_timeout_s: float = 2.0
    request_timeout_s: float = 300.0
    # How long a king that failed is skipped before it is tried again.
    king_cooldown_s: float = 10.0
    # Pause before asking the event log again after it failed.
    king_poll_s: float = 1.0
    usage_flush_s: float = 5.0
    # Follow the king and record usage through the ``arena.event_log`` actor. Without the log,
    # every request goes to the reference miner and usage is not recorded.
    event_log: bool = True
    # Organic checks (module docstring): the share of the king's completed chat completions
    # re-scored on the reference engine at ``rescore_endpoint`` (a vLLM OpenAI server of the
    # pinned model); off while the endpoint is empty, and without the event log.
    organic_check_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    rescore_endpoint: str = ""
    # Checks re-scoring at once; a sampled answer that finds them all busy is not checked, so
    # a burst of traffic never queues work on the reference engine.
    organic_check_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 2
