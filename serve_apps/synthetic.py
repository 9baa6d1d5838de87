"""A fast synthetic OpenAI chat server: fixed tokens, no model. It stands in for the king where the
thing measured or fuzzed is the gateway itself (``bench/gateway.py``, schema fuzzing), so that the
upstream costs next to nothing and answers every valid request with a 200.

Run: ``python -m serve_apps.synthetic --port 9000 --tokens 16``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import msgspec
import uvicorn

__all__ = [
    "synthetic_app",
    "main",
]

_decoder = msgspec.json.Decoder(dict)
_encoder = msgspec.json.Encoder()


def _chunk(model: str, index: int, delta: dict[str, Any], finish: str | None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if "content" in delta:
        choice["logprobs"] = {
            "content": [{"token": f"token_id:{index}", "logprob": -0.5, "top_logprobs": []}]
        }
    body = {
        "id": "chatcmpl-synthetic",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [choice],
    }
    return b"data: " + _encoder.encode(body) + b"\n\n"


def synthetic_app(tokens: int = 16, itl_s: float = 0.0) -> Any:
    """Raw ASGI app answering ``/v1/chat/completions`` with ``tokens`` tokens, ``itl_s`` apart."""

    async def send_json(send: Any, status: int, body: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": _encoder.encode(body)})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path in ("/health", "/v1/models"):
            await send_json(send, 200, {"object": "list", "data": [{"id": "arena-tiny"}]})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            request = _decoder.decode(body)
        except msgspec.DecodeError:
            await send_json(send, 400, {"error": {"message": "bad json", "type": "x"}})
            return
        model = request.get("model", "arena-tiny")
        usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
        if not request.get("stream"):
            text = "".join(f"t{i} " for i in range(tokens))
            await send_json(
                send,
                200,
                {
                    "id": "chatcmpl-synthetic",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": _chunk(model, 0, {"role": "assistant", "content": ""}, None),
                "more_body": True,
            }
        )
        for i in range(tokens):
            if itl_s:
                await asyncio.sleep(itl_s)
            finish = "length" if i == tokens - 1 else None
            await send(
                {
                    "type": "http.response.body",
                    "body": _chunk(model, i, {"content": f"t{i} "}, finish),
                    "more_body": True,
                }
            )
        tail = b""
        if (request.get("stream_options") or {}).get("include_usage"):
            tail = b"data: " + _encoder.encode({"choices": [], "usage": usage}) + b"\n\n"
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    args = parser.parse_args()
    app = synthetic_app(args.tokens, args.itl_ms / 1000)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
