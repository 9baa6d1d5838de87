"""Request validation: every client mistake is a 400 that names the field, in OpenAI's shape."""

from __future__ import annotations

import msgspec
import pytest

from serve_apps.openai_schema import (
    ApiError,
    openapi_document,
    parse_chat_request,
    parse_completion_request,
)

OK = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
ROBOT = b'{"model": "m", "messages": [{"role": "robot", "content": "x"}]}'


def test_valid_request_keeps_defaults_and_ignores_unknown_fields() -> None:
    chat = parse_chat_request(OK[:-1] + b', "return_tokens_as_token_ids": true}')
    assert (chat.model, chat.stream, chat.logprobs, chat.n) == ("m", False, False, 1)
    content = b'[{"type": "text", "text": "a"}]'
    chat = parse_chat_request(
        b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": '
        + content
        + b"}]}"
    )
    assert chat.stream and chat.messages[0].content[0].text == "a"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{", None, "invalid_json"),
        (b"", None, "invalid_json"),
        (b"[]", None, None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", None),
        (b'{"model": "m"}', "messages", None),
        (b'{"model": "m", "messages": []}', "messages", None),
        (ROBOT, "messages[0].role", None),
        (b'{"model": "m", "messages": [{"role": "user"}]}', "messages[0].content", None),
        (OK[:-1] + b', "max_tokens": "ten"}', "max_tokens", None),
        (OK[:-1] + b', "max_tokens": 0}', "max_tokens", None),
        (OK[:-1] + b', "temperature": 9}', "temperature", None),
        (OK[:-1] + b', "stream": "yes"}', "stream", None),
        (OK[:-1] + b', "top_logprobs": 99}', "top_logprobs", None),
        (OK[:-1] + b', "max_tokens": 99999999999999999999999}', "max_tokens", None),
    ],
)
def test_client_mistakes_are_400_naming_the_field(
    body: bytes, param: str | None, code: str | None
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body)
    error = caught.value
    assert error.status == 400
    assert (error.param, error.code) == (param, code)
    assert msgspec.json.decode(error.body())["error"] == {
        "message": error.message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_a_completion_takes_one_prompt_as_text_or_token_ids() -> None:
    assert parse_completion_request(b'{"model": "m", "prompt": "hi"}').prompt == "hi"
    completion = parse_completion_request(b'{"model": "m", "prompt": [1, 2], "logprobs": 2}')
    assert (completion.prompt, completion.logprobs, completion.echo) == ([1, 2], 2, False)
    for body, param in [
        (b'{"model": "m"}', "prompt"),
        (b'{"model": "m", "prompt": []}', "prompt"),
        (b'{"model": "m", "prompt": ["a", "b"]}', "prompt[0]"),
        (b'{"model": "m", "prompt": [-1]}', "prompt[0]"),
        (b'{"model": "m", "prompt": "hi", "n": 3}', "n"),
        (b'{"model": "m", "prompt": "hi", "echo": "yes"}', "echo"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_completion_request(body)
        assert (caught.value.status, caught.value.param) == (400, param)


@pytest.mark.parametrize(
    ("path", "required"),
    [("/v1/chat/completions", {"model", "messages"}), ("/v1/completions", {"model", "prompt"})],
)
def test_openapi_document_describes_the_request_structs(path: str, required: set[str]) -> None:
    doc = openapi_document("arena-tiny")
    post = doc["paths"][path]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == required
    assert schema["properties"]["max_tokens"]["anyOf"][0]["minimum"] == 1
    assert {"400", "401", "413", "429"} <= set(post["responses"])
