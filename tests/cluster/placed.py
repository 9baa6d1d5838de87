"""Where actors run on a test cluster: an actor that only says where it runs (the real Evaluator
needs the log and Docker), and the GCS actor table, which works without the dashboard."""

from __future__ import annotations

import ray


class Placed:
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


def actor_rows() -> dict[str, dict]:
    """The GCS actor table's row of each ``arena.*`` actor, by name."""
    from ray._private.state import actors

    rows: dict[str, dict] = {}
    for row in actors().values():
        name = row["Name"]
        # A dead incarnation and a live one may share a name; keep the live one.
        if name.startswith("arena.") and (name not in rows or row["State"] != "DEAD"):
            rows[name] = row
    return rows


def node_of(name: str) -> str:
    """The node id of the named actor."""
    return actor_rows()[name]["Address"]["NodeID"]
