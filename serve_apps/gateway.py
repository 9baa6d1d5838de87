"""The organic-request gateway: OpenAI-compatible chat and text completions, forwarded to the king,
and the read-only dashboard (``serve_apps.dashboard``) at ``/dashboard/`` when it follows the log.

Run it with Ray Serve (the builder takes the config as ``key=value`` arguments)::

    serve run serve_apps.gateway:build_app \\
        reference_endpoint=http://127.0.0.1:8000 keys_file=/srv/arena/keys.json port=8080

On the validator's cluster (``RAY_ADDRESS`` set) add ``--non-blocking``, stop with ``serve
shutdown -y``; ``event_log=false`` serves from the reference miner alone, with no event log.

Organic checks (``rescore_endpoint=URL organic_check_share=0.05``): that share of the king's
completed chat completions, streamed or not, is re-scored on the reference engine at URL by
``serve_apps.organic_check`` after the user has the whole answer, in the background, and
recorded as ``OrganicChecked``; the crown keeper dethrones a king whose checks fail.

Serving path: each replica serves the ASGI app on its own uvicorn listener bound to the configured
host (127.0.0.1 unless told otherwise) instead of behind Serve's HTTP proxy. Serve still places,
health-checks and restarts the replicas; requests skip the proxy hop. ``bench/gateway.py`` on 2
busy cores, against a synthetic upstream: this path added 2.2 ms median TTFT and kept 83 req/s
(direct: 98); the same app behind Serve's proxy with access logs off added 12.9 ms (54 req/s);
LiteLLM's proxy added 26.4 ms (5 req/s). Serve's HAProxy mode was not taken: it forces every
replica to listen on all interfaces.

Like every module here that defines Serve deployments, this one does without
``from __future__ import annotations`` (it breaks Serve ingress apps; DESIGN.md section 8).
"""

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import httpx
import msgspec
from ray import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from actors.log_client import LogClient
from actors.placement import on_head
from events.client import BaseLogClient
from events.log import type_name
from events.types import Event, KingDethroned, KingServing, OrganicChecked
from harness.gate import InconclusiveError
from harness.profile import get_profile
from rules.king import follow_serving
from serve_apps.dashboard import dashboard_routes
from serve_apps.gateway_config import GatewayConfig
from serve_apps.keys import ApiKey, KeyRing, default_keys_path
from serve_apps.listener import Listener
from serve_apps.openai_schema import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    error_body,
    openapi_document,
    parse_chat_request,
    parse_completion_request,
)
from serve_apps.organic_check import (
    AnswerCollector,
    OrganicRequest,
    ReferenceEngine,
    answer_of_completion,
    check_answer,
    organic_request,
)
from serve_apps.proxy import Usage, open_upstream, relay_stream, request_usage, usage_of_completion
from serve_apps.ratelimit import RateLimiter, retry_after_header
from serve_apps.upstreams import Upstreams
from serve_apps.usage import UsageWindows, unix_minute

__all__ = [
    "GatewayConfig",
    "GatewayServer",
    "build_app",
    "create_app",
    "serve_gateway",
]

logger = logging.getLogger(__name__)
_KING_TYPES = [type_name(KingServing), type_name(KingDethroned)]


def _error_response(error: ApiError) -> Response:
    return Response(
        error.body(), error.status, headers=error.headers, media_type="application/json"
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer sk-arena-...'",
            code="invalid_api_key",
        )
    return token.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(
        413, f"request body is larger than {limit} bytes", code="request_too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


class _OrganicChecks:
    """Re-scores sampled answers of the king in background tasks, at most ``limit`` at once."""

    def __init__(
        self, config: GatewayConfig, client: httpx.AsyncClient, log: BaseLogClient
    ) -> None:
        self.engine = ReferenceEngine(client, config.rescore_endpoint, config.served_model_name)
        self.share = config.organic_check_share
        self.limit = config.organic_check_concurrency
        self.log = log
        self.random = random.Random()
        self.running: set[asyncio.Task] = set()

    def sampled(self) -> bool:
        return self.random.random() < self.share

    def submit(self, king: KingServing, request: OrganicRequest, answer: str) -> None:
        """Start checking ``answer`` unless ``limit`` checks are running; never waits."""
        if len(self.running) >= self.limit:
            logger.info("organic check dropped: %d already running", len(self.running))
            return
        task = asyncio.create_task(self._check(king, request, answer))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _check(self, king: KingServing, request: OrganicRequest, answer: str) -> None:
        # The gateway's own id: a king's completion id could repeat and so collide in the log.
        request_id = uuid.uuid4().hex
        try:
            verdict = await check_answer(self.engine, request, answer)
        except InconclusiveError as exc:
            logger.warning("organic check %s of %s not judged: %s", request_id, king.hotkey, exc)
            return
        except Exception:
            logger.exception("organic check %s of %s failed", request_id, king.hotkey)
            return
        if verdict is None:
            return
        event = OrganicChecked(
            hotkey=king.hotkey,
            digest=king.digest,
            request_id=request_id,
            passed=verdict.passed,
            reason=f"{verdict.reason}: {verdict.details}" if verdict.details else verdict.reason,
            rule=verdict.rule,
            answer_tokens=verdict.answer_tokens,
            reference_tokens=verdict.reference_tokens,
            gap=verdict.gap,
        )
        try:
            await self.log.append_async([event])
        except Exception:
            logger.exception("appending organic check %s failed; it is lost", request_id)

    async def close(self) -> None:
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)


class _Gateway:
    """Request handling state for one replica: keys, limits, upstream choice, usage."""

    def __init__(self, config: GatewayConfig, log: BaseLogClient | None) -> None:
        self.config = config
        self.log = log
        self.keys = KeyRing(Path(config.keys_file))
        self.limiter = RateLimiter()
        self.upstreams = Upstreams(config.reference_endpoint, config.king_cooldown_s)
        self.usage = UsageWindows()
        self._unsent: list[Event] = []
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.request_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
        )
        self.king: KingServing | None = None
        self.organic = (
            _OrganicChecks(config, self.client, log)
            if log is not None and config.rescore_endpoint and config.organic_check_share > 0
            else None
        )
        self.models = {
            "object": "list",
            "data": [
                {
                    "id": config.served_model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "arena",
                }
            ],
        }

    def authorize(self, request: Request) -> ApiKey:
        key = self.keys.lookup(_bearer(request))
        if key is None:
            raise ApiError(401, "unknown or revoked API key", code="invalid_api_key")
        wait = self.limiter.check(key.key_id, key.rate_per_s, key.burst, time.monotonic())
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of {key.rate_per_s:g} requests/s (burst {key.burst}) exceeded "
                f"for {key.key_id}; retry after {wait:.2f}s",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return key

    def record(self, key: ApiKey, endpoint: str, usage: Usage, error: bool) -> None:
        self.usage.record(
            key_id=key.key_id,
            minute=unix_minute(time.time()),
            upstream=endpoint,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            error=error,
        )

    def to_check(self, endpoint: str, body: bytes) -> tuple[KingServing, OrganicRequest] | None:
        """The king and the request, if this answer is sampled for an organic check."""
        king = self.king
        if self.organic is None or king is None or endpoint != king.endpoint.rstrip("/"):
            return None
        if not self.organic.sampled():
            return None
        request = organic_request(body)
        return None if request is None else (king, request)

    async def chat_completions(self, request: Request) -> Response:
        return await self.generate(request, "/v1/chat/completions", parse_chat_request)

    async def completions(self, request: Request) -> Response:
        return await self.generate(request, "/v1/completions", parse_completion_request)

    async def generate(
        self,
        request: Request,
        path: str,
        parse: Callable[[bytes], ChatCompletionRequest | CompletionRequest],
    ) -> Response:
        """Forward a completion request to ``path`` upstream: keys, limits, failover, usage."""
        key = self.authorize(request)
        body = await _read_body(request, self.config.max_body_bytes)
        parsed = parse(body)
        if parsed.model != self.config.served_model_name:
            raise ApiError(
                404,
                f"model {parsed.model!r} is not served here; use {self.config.served_model_name!r}",
                param="model",
                code="model_not_found",
            )
        client_body = body
        client_wants_usage = (
            parsed.stream_options is not None and parsed.stream_options.include_usage
        )
        if parsed.stream and not client_wants_usage:
            body = request_usage(body)
        try:
            endpoint, upstream = await open_upstream(self.client, self.upstreams, path, body)
        except ApiError:
            self.record(key, "", Usage(), error=True)
            raise
        self.upstreams.mark_up(endpoint)
        # Organic checks re-score chat answers only (serve_apps.organic_check).
        check = (
            self.to_check(endpoint, client_body)
            if isinstance(parsed, ChatCompletionRequest)
            else None
        )
        headers = {
            "content-type": upstream.headers.get("content-type", "application/json"),
            # Which kind of server answered (never its address): lets clients and tests see
            # failover happen.
            "x-arena-upstream": "reference" if endpoint == self.upstreams.reference else "king",
        }
        if not parsed.stream or upstream.status_code != 200:
            try:
                content = await upstream.aread()
            except httpx.HTTPError as exc:
                self.upstreams.mark_down(endpoint, time.monotonic())
                self.record(key, endpoint, Usage(), error=True)
                raise ApiError(
                    502,
                    f"the upstream server failed mid-response ({type(exc).__name__}); retry",
                    type="server_error",
                    code="upstream_failed",
                ) from None
            finally:
                await upstream.aclose()
            ok = upstream.status_code == 200
            usage = usage_of_completion(content) if ok else Usage()
            self.record(key, endpoint, usage, error=not ok)
            if check is not None and ok:
                answer = answer_of_completion(content)
                if answer is not None:
                    self.organic.submit(*check, answer)
            return Response(content, upstream.status_code, headers=headers)
        stream = relay_stream(
            upstream,
            keep_usage_chunk=client_wants_usage,
            on_upstream_failure=lambda: self.upstreams.mark_down(endpoint, time.monotonic()),
            on_done=lambda usage, failed: self.record(key, endpoint, usage, failed),
        )
        if check is not None:
            stream = self.collected(stream, *check)
        return StreamingResponse(stream, 200, headers=headers)

    async def collected(
        self, stream: AsyncIterator[bytes], king: KingServing, request: OrganicRequest
    ) -> AsyncIterator[bytes]:
        """Pass ``stream`` through untouched, noting the answer; check it once it has all gone."""
        collector = AnswerCollector()
        async with aclosing(stream):
            async for chunk in stream:
                collector.feed(chunk)
                yield chunk
        answer = collector.answer()
        if answer is not None:
            self.organic.submit(king, request, answer)

    async def list_models(self, request: Request) -> Response:
        self.authorize(request)
        return JSONResponse(self.models)

    async def follow_king(self) -> None:
        """Keep the upstream choice on the latest ``KingServing``; a dethroned king is dropped."""
        assert self.log is not None
        after, serving = 0, None
        while True:
            try:
                records = await self.log.wait_for(after, _KING_TYPES, timeout_s=30.0)
            except Exception:
                logger.exception("following the king in the event log failed; retrying")
                await asyncio.sleep(self.config.king_poll_s)
                continue
            for record in records:
                serving = follow_serving(serving, record.event)
            if records:
                after = records[-1].seq
                self.king = serving
                self.upstreams.set_king(serving.endpoint if serving else None)

    async def flush_usage(self, everything: bool = False) -> None:
        """Append finished minutes (all minutes when ``everything``); keep them if the log fails."""
        assert self.log is not None
        before = None if everything else unix_minute(time.time())
        self._unsent.extend(self.usage.drain(before))
        if not self._unsent:
            return
        try:
            await self.log.append_async(self._unsent)
            self._unsent = []
        except Exception:
            logger.exception("appending %d usage windows failed; will retry", len(self._unsent))

    async def flush_usage_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.usage_flush_s)
            await self.flush_usage()


def create_app(config: GatewayConfig, log: BaseLogClient | None = None) -> Starlette:
    """The gateway as a plain ASGI app (what each Serve replica serves, and what tests run);
    with a ``log``, it serves the read-only dashboard over it at ``/dashboard/`` too."""
    gateway = _Gateway(config, log)
    openapi = openapi_document(config.served_model_name)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = []
        if log is not None:
            tasks = [
                asyncio.create_task(gateway.follow_king()),
                asyncio.create_task(gateway.flush_usage_forever()),
            ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if gateway.organic is not None:
                await gateway.organic.close()
            if log is not None:
                await gateway.flush_usage(everything=True)
            await gateway.client.aclose()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return Response(
            error_body(str(exc.detail), type=error_type),
            exc.status_code,
            headers=exc.headers,
            media_type="application/json",
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("gateway bug while handling %s", request.url.path, exc_info=exc)
        return Response(
            error_body("internal gateway error", type="server_error"),
            500,
            media_type="application/json",
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
            Route("/v1/completions", gateway.completions, methods=["POST"]),
            Route("/v1/models", gateway.list_models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            # The read-only dashboard over the log it follows (serve_apps.dashboard).
            *([dashboard_routes(log)] if log is not None else []),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app


@serve.deployment(
    num_replicas=1,
    max_ongoing_requests=1024,
    health_check_period_s=5,
    ray_actor_options=on_head(),
)
class GatewayServer:
    """A Serve replica that serves the gateway on its own listener (see the module docstring)."""

    async def __init__(self, config: GatewayConfig) -> None:
        log = None
        if config.event_log:
            try:
                log = LogClient()
            except ValueError as exc:
                raise RuntimeError(
                    "the gateway follows the king through the arena.event_log actor, which is "
                    "not running: start the validator first, or deploy with event_log=false "
                    "to serve from the reference miner alone"
                ) from exc
        self._listener = Listener(create_app(config, log), config.host, config.port)
        await self._listener.start()

    async def check_health(self) -> None:
        self._listener.check()

    async def __del__(self) -> None:
        # Stops accepting, lets in-flight streams finish, then flushes the usage windows.
        await self._listener.stop()


def build_app(args: dict[str, str]) -> serve.Application:
    """Serve builder; ``args`` are GatewayConfig fields as strings, plus ``profile``.

    The settings are resolved here, once: ``reference_endpoint`` is required; ``keys_file``
    defaults to ``arena keys``' default file, ``served_model_name`` to the profile's (``profile``,
    default ``local``).
    """
    args = dict(args)
    profile = get_profile(args.pop("profile", "local"))
    args.setdefault("served_model_name", profile.served_model_name)
    args.setdefault("keys_file", str(default_keys_path()))
    try:
        config = msgspec.convert(args, GatewayConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(
            f"bad gateway arguments: {exc}; give reference_endpoint=URL and optional "
            f"{', '.join(GatewayConfig.__struct_fields__[1:])}"
        ) from None
    return serve_gateway(config)


def serve_gateway(config: GatewayConfig) -> serve.Application:
    return GatewayServer.bind(config)
