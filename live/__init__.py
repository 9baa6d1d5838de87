"""Live-endpoint mode: miners serve a task from their own endpoints, validators challenge them.

The classic inference-subnet shape beside the container arena: miners register their address
with ``serve_axon``; validators send signed synthetic challenges and forward organic requests,
score correctness and latency, and set weights from the scores. See :mod:`live.task` for the task
interface and :mod:`live.tasks.arith` for the example.
"""
