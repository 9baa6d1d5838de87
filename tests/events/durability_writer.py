"""Writer for the durability test: appends batches forever, printing each acknowledged batch.

Usage: ``python durability_writer.py LOG_PATH CYCLE SEED``. Each stdout line is the JSON list
``[[seq, key], ...]`` of one batch, printed only after ``EventLog.append`` returned (committed).
It first re-sends keys of the previous cycle, as a writer retrying after a crash would: a batch,
then three one-event appends. Half its batches hold one event, which take the journal's path.
"""

from __future__ import annotations

import json
import random
import sys

from events.log import EventLog
from events.types import EvalStarted


def batch(cycle: int, first: int, count: int) -> list[EvalStarted]:
    return [
        EvalStarted(eval_id=f"c{cycle}-{i}", attempt=1, worker=f"writer-{cycle}")
        for i in range(first, first + count)
    ]


def main(path: str, cycle: int, seed: int) -> None:
    rng = random.Random(seed)
    log = EventLog(path, lock_wait_s=30)
    resent = [batch(cycle - 1, 0, 50), *(batch(cycle - 1, i, 1) for i in range(3))]
    sent = resent.pop(0) if cycle > 0 else []
    next_id = 0
    while True:
        seqs = log.append(sent)
        print(json.dumps([[s, e.key] for s, e in zip(seqs, sent, strict=True)]), flush=True)
        if cycle > 0 and resent:
            sent = resent.pop(0)
            continue
        count = rng.choice([1, rng.randint(2, 300)])
        sent = batch(cycle, next_id, count)
        next_id += count


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
