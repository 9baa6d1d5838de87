"""The task interface of live-endpoint mode.

A task fixes what miners serve and how validators judge it: the request and response schemas
(msgspec structs), a seeded generator of synthetic requests, and a checker that says whether a
response answers a request. Scoring (correctness mixed with latency) is shared by every task and
lives in :mod:`live.scoring`.

Miners must not be able to tell synthetic requests from organic ones, so both travel in the same
schema and carry no marker of their origin.
"""

from __future__ import annotations

import random
from typing import Generic, Protocol, TypeVar

import msgspec

from live.errors import LiveError

__all__ = ["Task", "TaskError", "decode_request", "decode_response"]

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)


class TaskError(LiveError, ValueError):
    """A request or response body that does not fit the task's schema."""


class Task(Protocol, Generic[Req, Resp]):
    """What a subnet builder implements to define a live task."""

    #: URL-safe name; miners serve the task at ``POST /task/<name>``.
    name: str
    request_type: type[Req]
    response_type: type[Resp]

    def generate(self, rng: random.Random) -> Req:
        """A synthetic request; the same ``rng`` state gives the same request."""
        ...

    def answer(self, request: Req) -> Resp:
        """The reference answer, as an honest miner computes it."""
        ...

    def check(self, request: Req, response: Resp) -> bool:
        """Whether ``response`` correctly answers ``request``."""
        ...


def decode_request(task: Task[Req, Resp], body: bytes) -> Req:
    """Parse a request body, raising :class:`TaskError` with msgspec's precise message."""
    try:
        return msgspec.json.decode(body, type=task.request_type)
    except msgspec.DecodeError as exc:
        raise TaskError(f"request body is not a valid {task.name} request: {exc}") from exc


def decode_response(task: Task[Req, Resp], body: bytes) -> Resp:
    """Parse a miner's response body, raising :class:`TaskError` when it does not fit."""
    try:
        return msgspec.json.decode(body, type=task.response_type)
    except msgspec.DecodeError as exc:
        raise TaskError(f"response body is not a valid {task.name} response: {exc}") from exc
