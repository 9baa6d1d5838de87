"""The gateway's request contract: msgspec structs for a chat completion and a (text) completion,
OpenAI-style errors, and the OpenAPI document generated from the same structs (what schemathesis
fuzzes).

Validation only guards the gateway: the request bytes that reach the upstream are the client's own
(unknown fields included), so the king and the reference miner see exactly what was sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from serve_apps.errors import ServeError

__all__ = [
    "ApiError",
    "ChatCompletionRequest",
    "CompletionRequest",
    "error_body",
    "openapi_document",
    "parse_chat_request",
    "Penalty",
    "TextPart",
    "Message",
    "StreamOptions",
    "parse_completion_request",
]

_MAX_TOKENS = 1 << 20
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]


class TextPart(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True):
    text: str


class Message(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class _GenerationRequest(msgspec.Struct, kw_only=True):
    """The fields chat and text completions share."""

    model: Annotated[str, Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=_MAX_TOKENS)] | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    # One answer per request: usage is counted and answers are checked one at a time.
    n: Annotated[int, Meta(ge=1, le=1)] = 1
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    seed: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    user: str | None = None


class ChatCompletionRequest(_GenerationRequest, kw_only=True):
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_completion_tokens: Annotated[int, Meta(ge=1, le=_MAX_TOKENS)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None


class CompletionRequest(_GenerationRequest, kw_only=True):
    # One prompt, as text or token ids: a batch of prompts would be several answers (see ``n``).
    prompt: str | Annotated[list[Annotated[int, Meta(ge=0)]], Meta(min_length=1)]
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    echo: bool = False


class ApiError(ServeError):
    """A request the gateway refuses; rendered as an OpenAI error body with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


class _ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _Error(msgspec.Struct):
    error: _ErrorDetail


_Request = TypeVar("_Request", ChatCompletionRequest, CompletionRequest)
_encoder = msgspec.json.Encoder()
_chat_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_completion_decoder = msgspec.json.Decoder(CompletionRequest)
_AT_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> bytes:
    return _encoder.encode(_Error(_ErrorDetail(message, type, param, code)))


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Decode and validate; any client mistake becomes a 400 :class:`ApiError` naming the field."""
    return _parse(_chat_decoder, body)


def parse_completion_request(body: bytes) -> CompletionRequest:
    """:func:`parse_chat_request` for ``/v1/completions``."""
    return _parse(_completion_decoder, body)


def _parse(decoder: msgspec.json.Decoder[_Request], body: bytes) -> _Request:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = None
        if match := _AT_PATH.search(text):
            param = match.group(1) or None
        if match := _MISSING_FIELD.search(text):
            param = f"{param}.{match.group(1)}" if param else match.group(1)
        raise ApiError(400, text, param=param) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None


def openapi_document(served_model_name: str) -> dict[str, Any]:
    """OpenAPI 3.1 description of the gateway, with request schemas taken from the structs."""
    (chat_schema, completion_schema, error_schema), components = msgspec.json.schema_components(
        (ChatCompletionRequest, CompletionRequest, _Error),
        ref_template="#/components/schemas/{name}",
    )
    errors = {
        str(status): {
            "description": why,
            "content": {"application/json": {"schema": error_schema}},
        }
        for status, why in [
            (400, "invalid request"),
            (401, "missing, unknown or revoked API key"),
            (404, "unknown model"),
            (413, "request body too large"),
            (429, "rate limit exceeded; see Retry-After"),
            (502, "upstream failed"),
        ]
    }
    auth_errors = {k: v for k, v in errors.items() if k in ("401", "429")}

    def generation(operation_id: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "post": {
                "operationId": operation_id,
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "200": {
                        "description": "a completion, or an SSE stream when stream=true",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **errors,
                },
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Arena gateway",
            "version": "1",
            "description": f"OpenAI-compatible chat and text completions for {served_model_name}.",
        },
        "paths": {
            "/v1/chat/completions": generation("createChatCompletion", chat_schema),
            "/v1/completions": generation("createCompletion", completion_schema),
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "the served model",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **auth_errors,
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": {"description": "the gateway is up"}},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
