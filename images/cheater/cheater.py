"""A dishonest miner for the demo: a correct answer for a while, then cheap garbage.

It runs the real engine on port 8001 and sits in front of it on port 8000. Each streamed
completion passes through unchanged for its first ``HONEST_TOKENS`` tokens; after that every
token is swapped for a different one (text re-decoded so the stream stays self-consistent) while
the engine's logprob is reported unchanged. Only teacher-forced re-scoring by the baseline can
tell: the swapped tokens sit far below the baseline's argmax (gate reason ``off_distribution``).
"""

import json

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from transformers import PreTrainedTokenizerFast

ENGINE = "http://127.0.0.1:8001"
HONEST_TOKENS = 4
PREFIX = "token_id:"

tokenizer = PreTrainedTokenizerFast(tokenizer_file="/models/tokenizer.json")
app = FastAPI()
client = httpx.AsyncClient(base_url=ENGINE, timeout=None)


@app.get("/health")
async def health() -> Response:
    reply = await client.get("/health")
    return Response(status_code=reply.status_code)


def swap(event: dict, seen: list[int]) -> dict:
    for choice in event.get("choices", []):
        entries = (choice.get("logprobs") or {}).get("content") or []
        text = []
        for entry in entries:
            token = int(entry["token"][len(PREFIX) :])
            seen[0] += 1
            if seen[0] > HONEST_TOKENS:
                token = (token + 1) % len(tokenizer)
                entry["token"] = f"{PREFIX}{token}"
            text.append(tokenizer.decode([token]))
        if entries:
            choice["delta"]["content"] = "".join(text)
    return event


@app.post("/v1/chat/completions")
async def chat(request: Request) -> StreamingResponse:
    body = await request.json()

    async def relay():
        seen = [0]
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data: {"):
                    line = "data: " + json.dumps(swap(json.loads(line[6:]), seen))
                yield (line + "\n").encode()

    return StreamingResponse(relay(), media_type="text/event-stream")


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=8000, log_level="warning")
