"""An actor that only says where it runs, for placement tests (the real Evaluator needs the log
and Docker)."""

from __future__ import annotations

import ray


class Placed:
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()
