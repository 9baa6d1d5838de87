"""SQL views over the event log for live-endpoint mode.

Installed with :func:`install_views` on the log's DuckDB connection (the ``events`` table of
:mod:`events.log`); each is a plain ``CREATE OR REPLACE VIEW``, so installing twice is harmless.
Where only read-only queries may run (``EventLog.sql`` and the log clients), :func:`with_views`
puts the same definitions in front of a query as common table expressions.

* ``live_scores``: one row per scored request, with the miner's average after it.
* ``live_miner_minutes``: per validator, miner and minute: requests, accuracy, latency, mean
  score and the average at the minute's end (scores over time).
* ``live_weights``: one row per uid of every weight vector a live validator computed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VIEWS", "install_views", "with_views"]

VIEWS: dict[str, str] = {
    "live_scores": """
        SELECT
            seq,
            ts,
            payload->>'validator' AS validator,
            CAST(payload->>'netuid' AS INTEGER) AS netuid,
            CAST(payload->>'uid' AS INTEGER) AS uid,
            payload->>'hotkey' AS hotkey,
            payload->>'task' AS task,
            payload->>'kind' AS kind,
            CAST(payload->>'window' AS BIGINT) AS "window",
            CAST(payload->>'correct' AS BOOLEAN) AS correct,
            CASE WHEN CAST(payload->>'latency_ms' AS DOUBLE) < 0 THEN NULL
                 ELSE CAST(payload->>'latency_ms' AS DOUBLE) END AS latency_ms,
            CAST(payload->>'score' AS DOUBLE) AS score,
            CAST(payload->>'ema' AS DOUBLE) AS ema,
            CAST(payload->>'counted' AS BOOLEAN) AS counted,
            NULLIF(payload->>'error_kind', '') AS error_kind
        FROM events
        WHERE type = 'LiveChallengeScored'
    """,
    "live_miner_minutes": """
        SELECT
            validator,
            netuid,
            uid,
            hotkey,
            date_trunc('minute', ts) AS minute,
            count(*) AS requests,
            count(*) FILTER (WHERE kind = 'organic') AS organic_requests,
            avg(CAST(correct AS INTEGER)) AS accuracy,
            count(*) FILTER (WHERE error_kind IS NOT NULL) AS errors,
            median(latency_ms) AS latency_ms_p50,
            avg(score) AS mean_score,
            arg_max(ema, seq) AS ema
        FROM live_scores
        GROUP BY validator, netuid, uid, hotkey, date_trunc('minute', ts)
    """,
    "live_weights": """
        SELECT
            seq,
            ts,
            payload->>'validator' AS validator,
            CAST(payload->>'netuid' AS INTEGER) AS netuid,
            CAST(payload->>'block' AS BIGINT) AS block,
            CAST(u.uid AS INTEGER) AS uid,
            CAST(w.weight AS DOUBLE) AS weight
        FROM events,
            unnest(CAST(payload->'uids' AS INTEGER[])) WITH ORDINALITY AS u(uid, i),
            unnest(CAST(payload->'weights' AS DOUBLE[])) WITH ORDINALITY AS w(weight, j)
        WHERE type = 'LiveWeightsComputed' AND i = j
    """,
}


def install_views(connection: Any) -> None:
    """Create (or replace) every live view on a DuckDB connection that holds ``events``."""
    for name, query in VIEWS.items():
        connection.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")


def with_views(query: str) -> str:
    """``query`` preceded by every live view as a CTE (for read-only connections)."""
    ctes = ",\n".join(f"{name} AS ({body})" for name, body in VIEWS.items())
    head, _, rest = query.lstrip().partition(" ")
    if head.upper() == "WITH":
        # The query's own CTEs follow ours, so they may use the views.
        return f"WITH {ctes},\n{rest}"
    return f"WITH {ctes}\n{query}"
