from __future__ import annotations

import random

import msgspec
import pytest

from live.task import TaskError, decode_request
from live.tasks import get_task
from live.tasks.arith import ArithRequest, ArithResponse, ArithTask

TASK = ArithTask()


def test_generator_is_seeded():
    a = [TASK.generate(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    many = [TASK.generate(random.Random(i)) for i in range(200)]
    assert {r.op for r in many} == {"add", "mul"}


def test_reference_answers_and_checker():
    assert TASK.answer(ArithRequest(op="add", a=2, b=-5)).result == -3
    assert TASK.answer(ArithRequest(op="mul", a=2**31 - 1, b=-(2**31 - 1))).result == -(
        (2**31 - 1) ** 2
    )
    request = ArithRequest(op="mul", a=6, b=7)
    assert TASK.check(request, ArithResponse(result=42))
    assert not TASK.check(request, ArithResponse(result=13))


def test_requests_round_trip_as_json():
    request = TASK.generate(random.Random(1))
    assert decode_request(TASK, msgspec.json.encode(request)) == request


@pytest.mark.parametrize(
    "body", [b"{}", b'{"op":"div","a":1,"b":2}', b'{"op":"add","a":1,"b":2,"x":0}', b"nope"]
)
def test_invalid_requests_are_refused(body):
    with pytest.raises(TaskError, match="arith"):
        decode_request(TASK, body)


def test_lookup_by_name():
    assert get_task("arith").name == "arith"
    with pytest.raises(ValueError, match="unknown live task"):
        get_task("chess")
