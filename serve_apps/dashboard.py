"""The validator's read-only web dashboard over the event log: HTML pages and their JSON twins.

The gateway serves it beside the OpenAI API whenever it follows the event log
(``serve_apps.gateway.create_app``); :func:`dashboard_app` serves it alone over any log client::

    GET /dashboard/                   the king, the leaderboard, the crown history, recent
                                      evaluations and weights
    GET /dashboard/weights            every weight setting
    GET /dashboard/eval/{eval_id}     one evaluation: its events, metrics per level, plots, the
                                      gate's details, the containers' log tails
    GET /dashboard/api/overview       each page's data as JSON
    GET /dashboard/api/weights
    GET /dashboard/api/eval/{eval_id}

Read-only: the log is only queried (``EventLog.sql`` refuses anything but one SELECT) and the
evidence only read. The pages are built by the pure functions of
:mod:`serve_apps.dashboard_pages`; this module reads their inputs. Handlers are plain functions,
which Starlette runs in its thread pool: a log client over Ray blocks, and the gateway's event
loop keeps streaming tokens meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from events.client import BaseLogClient, LocalLogClient
from events.errors import EventLogError
from events.log import type_name
from events.recorded import Recorded
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    KingCrowned,
    KingDethroned,
    RoundDecided,
    decode,
)
from harness.evidence import EVIDENCE_DIR, Evidence, EvidenceError
from harness.evidence import read as read_evidence
from serve_apps.dashboard_pages import (
    CrownChange,
    EvalPage,
    EvalRow,
    EvidencePart,
    Overview,
    WeightsPage,
    WeightsRow,
    current_king,
    eval_page,
    eval_plots,
    evidence_part,
    leaderboard,
    missing_page,
    render_eval,
    render_overview,
    render_weights,
    rows_as,
)

__all__ = ["DEFAULT_PATH", "Dashboard", "dashboard_app", "dashboard_routes"]

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/dashboard"
# The leaderboard ranks the submissions of this many newest evaluations.
_LEADERBOARD_EVALS = 10_000
_CROWN_HISTORY = 200
_KEPT_PAGES = 32  # finished evaluations whose evidence and plots stay in memory
_EVAL_TYPES = [type_name(t) for t in (EvalQueued, EvalStarted, BaselineMeasured, EvalFinished)]
_EVAL_EVENTS = f"""
SELECT seq, ts, payload FROM events
WHERE (type IN ({", ".join(f"'{t}'" for t in _EVAL_TYPES)}) AND payload->>'eval_id' = $id)
   OR (type = 'RoundOpened' AND list_contains(CAST(payload->'eval_ids' AS VARCHAR[]), $id))
ORDER BY seq
"""


def _columns(kind: type[msgspec.Struct]) -> str:
    """The SQL columns that fill ``kind``: its fields are named after a view's columns."""
    return ", ".join(kind.__struct_fields__)


_KINGS = f"SELECT {_columns(CrownChange)} FROM kings ORDER BY seq DESC LIMIT $n"
_KINGS_OF_EVAL = f"SELECT {_columns(CrownChange)} FROM kings WHERE eval_id = $id ORDER BY seq"
_EVALUATIONS = f"SELECT {_columns(EvalRow)} FROM evaluations ORDER BY seq DESC LIMIT $n"
_WEIGHTS = f"SELECT {_columns(WeightsRow)} FROM weights ORDER BY seq DESC LIMIT $n"
_CROWN_TYPES = [type_name(t) for t in (KingCrowned, KingDethroned, RoundDecided)]


class Dashboard:
    """Reads the pages' inputs from ``log`` and the evidence folder (by default the one beside
    the log's file, as the evaluator writes it), and builds the pages."""

    def __init__(
        self, log: BaseLogClient, evidence_dir: Path | None = None, recent: int = 20
    ) -> None:
        self.log = log
        self.recent = recent
        self._evidence_dir = evidence_dir
        # An in-process EventLog serves one thread at a time; the handlers run in a pool.
        self._lock = threading.Lock()
        # eval id -> (evidence part, note, plots if drawn) of finished evaluations (never change).
        self._kept: OrderedDict[str, tuple[EvidencePart | None, str, str | None]] = OrderedDict()

    def overview(self) -> Overview:
        with self._lock:
            king, rounds = current_king(list(self.log.replay(0, _CROWN_TYPES)))
            crown = self.log.sql(_KINGS, {"n": _CROWN_HISTORY})
            evaluations = self.log.sql(_EVALUATIONS, {"n": _LEADERBOARD_EVALS})
            weights = self.log.sql(_WEIGHTS, {"n": self.recent})
            last_seq = self.log.last_seq()
        evals = rows_as(EvalRow, *evaluations)
        return Overview(
            king=king,
            rounds_decided=rounds,
            last_seq=last_seq,
            leaderboard=leaderboard(evals),
            crown_history=rows_as(CrownChange, *crown),
            evaluations=evals[: self.recent],
            weights=rows_as(WeightsRow, *weights),
        )

    def weights(self) -> WeightsPage:
        with self._lock:
            columns, rows = self.log.sql(_WEIGHTS, {"n": 1_000_000})
        return WeightsPage(weights=rows_as(WeightsRow, columns, rows))

    def evaluation(self, eval_id: str, plots: bool = True) -> tuple[EvalPage, str] | None:
        """The page of ``eval_id`` and, if asked, its plots (inline SVG, else ""); None if the
        log never names it."""
        with self._lock:
            _, rows = self.log.sql(_EVAL_EVENTS, {"id": eval_id})
            crown = self.log.sql(_KINGS_OF_EVAL, {"id": eval_id})
            cached = self._kept.get(eval_id)
        records = [Recorded(seq, ts, decode(payload)) for seq, ts, payload in rows]
        page = eval_page(eval_id, records, rows_as(CrownChange, *crown), None, "")
        if page is None:
            return None
        if (
            page.status == "finished"
            and cached is not None
            and (cached[2] is not None or not plots)
        ):
            kept, note, svg = cached
        else:
            evidence, note = self._evidence(page)
            kept = None if evidence is None else evidence_part(evidence)
            svg = eval_plots(page, evidence) if plots else None
            if page.status == "finished":
                self._keep(eval_id, (kept, note, svg))
        return msgspec.structs.replace(page, kept=kept, evidence_note=note), svg or ""

    def evidence_dir(self) -> Path | None:
        """The evidence folder, or None when the log client cannot say where its file is."""
        if self._evidence_dir is None:
            try:
                log_file = _log_file(self.log)
            except EventLogError:
                logger.exception("asking the event log where its file is failed")
                return None
            if log_file is not None:
                self._evidence_dir = log_file.parent / EVIDENCE_DIR
        return self._evidence_dir

    def _evidence(self, page: EvalPage) -> tuple[Evidence | None, str]:
        """The evaluation's evidence, or None and why it is not shown."""
        if page.status != "finished":
            return None, "the evaluation has not finished; its evidence is kept when it does"
        if not page.evidence:
            return None, "no evidence was kept for this evaluation (it predates evidence)"
        folder = self.evidence_dir()
        if folder is None:
            return None, "the evidence folder is unknown: this log client cannot say where it is"
        try:
            return read_evidence(folder, page.eval_id, page.evidence), ""
        except (EvidenceError, ValueError) as exc:
            # The page is public: name the files, not where this machine keeps them.
            return (
                None,
                f"the evidence cannot be shown: {str(exc).replace(str(folder), EVIDENCE_DIR)}",
            )

    def _keep(self, eval_id: str, entry: tuple[EvidencePart | None, str, str | None]) -> None:
        with self._lock:
            self._kept[eval_id] = entry
            while len(self._kept) > _KEPT_PAGES:
                self._kept.popitem(last=False)


def _log_file(log: BaseLogClient) -> Path | None:
    """The log's DuckDB file: an in-process client holds it, ``LogClient`` asks the log actor."""
    if isinstance(log, LocalLogClient):
        return Path(log.live.log.path)
    path = getattr(log, "path", None)
    return Path(path()) if callable(path) else None


# The pages run no script and load nothing: a browser refuses any that markup from the log
# might still smuggle in, and never sniffs a JSON body as HTML.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _html(page: str, status: int = 200) -> Response:
    return HTMLResponse(page, status, headers=_HEADERS)


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        msgspec.json.encode(data), status, headers=_HEADERS, media_type="application/json"
    )


def _unknown_eval(eval_id: str) -> str:
    return (
        f"no evaluation {eval_id!r} in this event log: it was never queued here; "
        "the overview lists the evaluations there are"
    )


def dashboard_routes(
    log: BaseLogClient, evidence_dir: Path | None = None, path: str = DEFAULT_PATH
) -> Mount:
    """The dashboard's routes under ``path``, to add to an app (the gateway's)."""
    dashboard = Dashboard(log, evidence_dir)

    def overview_html(request: Request) -> Response:
        return _html(render_overview(dashboard.overview(), path))

    def overview_json(request: Request) -> Response:
        return _json(dashboard.overview())

    def weights_html(request: Request) -> Response:
        return _html(render_weights(dashboard.weights(), path))

    def weights_json(request: Request) -> Response:
        return _json(dashboard.weights())

    def eval_html(request: Request) -> Response:
        eval_id = request.path_params["eval_id"]
        found = dashboard.evaluation(eval_id)
        if found is None:
            return _html(missing_page(path, _unknown_eval(eval_id)), 404)
        return _html(render_eval(*found, path))

    def eval_json(request: Request) -> Response:
        eval_id = request.path_params["eval_id"]
        found = dashboard.evaluation(eval_id, plots=False)
        if found is None:
            return _json({"error": _unknown_eval(eval_id)}, 404)
        return _json(found[0])

    return Mount(
        path,
        routes=[
            Route("/", overview_html),
            Route("/weights", weights_html),
            Route("/eval/{eval_id}", eval_html),
            Route("/api/overview", overview_json),
            Route("/api/weights", weights_json),
            Route("/api/eval/{eval_id}", eval_json),
        ],
    )


def dashboard_app(
    log: BaseLogClient, evidence_dir: Path | None = None, path: str = DEFAULT_PATH
) -> Starlette:
    """The dashboard alone, as an ASGI app serving it under ``path``."""
    return Starlette(routes=[dashboard_routes(log, evidence_dir, path)])
