"""Where benchmarks write JSON: `bench/results/<name>-<timestamp>.json`, with the machine."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS",
    "write_result",
]


RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, body: dict[str, Any]) -> Path:
    """Write ``body`` plus the machine it ran on; returns the file's path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"machine": platform.node(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({**body, **machine}, indent=2))
    return out
