"""Example live tasks, looked up by name."""

from __future__ import annotations

from live.task import Task
from live.tasks.arith import ArithTask

__all__ = ["TASKS", "get_task"]

TASKS: dict[str, Task] = {ArithTask.name: ArithTask()}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown live task {name!r}; choose one of {', '.join(TASKS)}") from None
