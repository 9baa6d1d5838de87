"""Projections: SQL views over the event log, the tables ``arena sql`` users query.

Every view has ``seq`` and ``ts`` (commit time, UTC) of the event a row comes from.

``submissions`` (``SubmissionCommitted`` and ``SubmissionRejected``)
    status ('committed' | 'rejected'), netuid, uid (NULL when rejected), hotkey, block,
    image, digest (NULL when rejected), raw, reason (NULL when committed)
``evaluations`` (``EvalFinished``, joined with its ``EvalQueued``)
    eval_id, hotkey, role, image, digest, submitted_block, round_seed, verdict, reason,
    score, noise, metrics (JSON object of floats, e.g. ``metrics->>'ttft_ms_p50'``)
``kings`` (``KingCrowned``, ``CrownDefended``, ``KingDethroned``: the crown over time)
    change ('crowned' | 'defended' | 'dethroned'), hotkey, digest, image, score, block,
    eval_id (the eval that caused the change), previous_hotkey, reason
``weights`` (``WeightsSet``)
    netuid, block, success, uids (INTEGER[]), weights (INTEGER[]), extrinsic_hash, error,
    attempt, reason_eval_id
``organic_usage`` (``OrganicWindow``: gateway usage per API key per minute)
    key_id, minute_start (TIMESTAMPTZ), requests, errors, prompt_tokens, completion_tokens,
    upstream
"""

from __future__ import annotations

import duckdb

__all__ = ["VIEWS", "create_views"]


def _field(name: str, sql_type: str = "VARCHAR") -> str:
    cast = f"(payload->>'{name}')"
    return f"{cast}::{sql_type} AS {name}" if sql_type != "VARCHAR" else f"{cast} AS {name}"


VIEWS: dict[str, str] = {
    "submissions": f"""
        SELECT seq, ts,
               CASE type WHEN 'SubmissionCommitted' THEN 'committed' ELSE 'rejected' END
                   AS status,
               {_field("netuid", "INTEGER")}, {_field("uid", "INTEGER")}, {_field("hotkey")},
               {_field("block", "BIGINT")}, {_field("image")}, {_field("digest")},
               {_field("raw")}, {_field("reason")}
        FROM events WHERE type IN ('SubmissionCommitted', 'SubmissionRejected')
    """,
    "evaluations": """
        SELECT f.seq, f.ts, (f.payload->>'eval_id') AS eval_id, (f.payload->>'hotkey') AS hotkey,
               (f.payload->>'role') AS role, (q.payload->>'image') AS image,
               (f.payload->>'digest') AS digest,
               (q.payload->>'submitted_block')::BIGINT AS submitted_block,
               (q.payload->>'round_seed') AS round_seed, (f.payload->>'verdict') AS verdict,
               (f.payload->>'reason') AS reason, (f.payload->>'score')::DOUBLE AS score,
               (f.payload->>'noise')::DOUBLE AS noise, (f.payload->'metrics') AS metrics
        FROM events f
        LEFT JOIN events q ON q.type = 'EvalQueued' AND q.key = f.payload->>'eval_id'
        WHERE f.type = 'EvalFinished'
    """,
    "kings": f"""
        SELECT seq, ts,
               CASE type WHEN 'KingCrowned' THEN 'crowned' WHEN 'CrownDefended' THEN 'defended'
                         ELSE 'dethroned' END AS change,
               {_field("hotkey")}, {_field("digest")}, {_field("image")},
               {_field("score", "DOUBLE")}, {_field("block", "BIGINT")},
               coalesce(payload->>'eval_id', payload->>'challenger_eval_id') AS eval_id,
               {_field("previous_hotkey")}, {_field("reason")}
        FROM events WHERE type IN ('KingCrowned', 'CrownDefended', 'KingDethroned')
    """,
    "weights": f"""
        SELECT seq, ts, {_field("netuid", "INTEGER")}, {_field("block", "BIGINT")},
               {_field("success", "BOOLEAN")},
               (payload->'uids')::INTEGER[] AS uids, (payload->'weights')::INTEGER[] AS weights,
               {_field("extrinsic_hash")}, {_field("error")}, {_field("attempt", "INTEGER")},
               {_field("reason_eval_id")}
        FROM events WHERE type = 'WeightsSet'
    """,
    "organic_usage": f"""
        SELECT seq, ts, {_field("key_id")},
               to_timestamp((payload->>'minute')::BIGINT * 60) AS minute_start,
               {_field("requests", "BIGINT")}, {_field("errors", "BIGINT")},
               {_field("prompt_tokens", "BIGINT")}, {_field("completion_tokens", "BIGINT")},
               {_field("upstream")}
        FROM events WHERE type = 'OrganicWindow'
    """,
}


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create or refresh every projection view on ``con`` (the writer's connection)."""
    for name, query in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {query}").fetchall()
