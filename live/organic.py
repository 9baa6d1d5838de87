"""Organic requests in live mode: ``POST /v1/live/<task>`` with a gateway API key.

The same API keys, per-key rate limits and error bodies as the OpenAI gateway
(:mod:`serve_apps.gateway`), so one key file and one client convention serve both modes. The body
is validated against the task's schema before any miner sees it, then forwarded by the validator
to the best-scored miner with organic capacity left; the miner's answer is scored like a
challenge and returned as is.
"""

from __future__ import annotations

import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live.task import TaskError
from live.validator import LiveValidator, NoMinerAvailable
from serve_apps.keys import KeyRing
from serve_apps.openai_schema import ApiError
from serve_apps.ratelimit import RateLimiter, retry_after_header

__all__ = ["create_organic_app"]


def create_organic_app(
    validator: LiveValidator, keys_file: Path, *, max_body_bytes: int = 64 * 1024
) -> Starlette:
    keys = KeyRing(keys_file)
    limiter = RateLimiter()
    path = f"/v1/live/{validator.task.name}"

    def authorize(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer sk-arena-...'")
        key = keys.lookup(token.strip())
        if key is None:
            raise ApiError(401, "unknown or revoked API key", code="invalid_api_key")
        wait = limiter.check(key.key_id, key.rate_per_s, key.burst, time.monotonic())
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of {key.rate_per_s:g} requests/s exceeded for {key.key_id}",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )

    async def forward(request: Request) -> Response:
        try:
            authorize(request)
            body = await request.body()
            if len(body) > max_body_bytes:
                raise ApiError(413, f"request body is larger than {max_body_bytes} bytes")
            try:
                reply = await validator.forward_organic(body)
            except TaskError as exc:
                raise ApiError(400, str(exc)) from None
            except NoMinerAvailable as exc:
                raise ApiError(503, f"{exc}; retry shortly", type="server_error") from None
        except ApiError as error:
            return Response(error.body(), error.status, error.headers, "application/json")
        return Response(
            reply.body,
            200,
            headers={"x-arena-miner-uid": str(reply.uid)},
            media_type="application/json",
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "miners": len(validator.neurons)})

    return Starlette(
        routes=[
            Route(path, forward, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
