"""The example task: add or multiply two random integers."""

from __future__ import annotations

import random
from typing import ClassVar, Literal

import msgspec

__all__ = [
    "ArithRequest",
    "ArithResponse",
    "ArithTask",
    "Op",
]

Op = Literal["add", "mul"]


class ArithRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    op: Op
    a: int
    b: int


class ArithResponse(msgspec.Struct, frozen=True):
    result: int


class ArithTask:
    name: ClassVar[str] = "arith"
    request_type = ArithRequest
    response_type = ArithResponse

    # Products of operands below 2**31 fit in a signed 64-bit integer, which every JSON reader
    # and every miner language holds exactly.
    max_operand: ClassVar[int] = 2**31 - 1

    def generate(self, rng: random.Random) -> ArithRequest:
        op: Op = rng.choice(("add", "mul"))
        return ArithRequest(
            op=op,
            a=rng.randint(-self.max_operand, self.max_operand),
            b=rng.randint(-self.max_operand, self.max_operand),
        )

    def answer(self, request: ArithRequest) -> ArithResponse:
        if request.op == "add":
            return ArithResponse(result=request.a + request.b)
        return ArithResponse(result=request.a * request.b)

    def check(self, request: ArithRequest, response: ArithResponse) -> bool:
        return response.result == self.answer(request).result
