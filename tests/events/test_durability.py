"""Durability: every acknowledged append survives SIGKILL of the writer, exactly once, in order.

A writer process appends batches and prints each one after its commit; the test kills it with
SIGKILL after a random number of acknowledgements (the writer is usually mid-append then),
reopens the file, and checks every acknowledged event against it. Then it starts the next
writer, which first re-sends events of the killed one, as a retrying writer would. Half the
writer's appends hold one event, so kills land in both the DuckDB and the journal paths.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from events.log import EventLog

WRITER = Path(__file__).with_name("durability_writer.py")
CYCLES = 20
SEED = 20261122


def check_log(path: Path, acked: dict[str, int]) -> int:
    with EventLog(path) as log:  # the file opens after a kill
        rows = log.sql("SELECT seq, key FROM events ORDER BY seq")[1]
        assert log.last_seq() == len(rows)
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, len(rows) + 1)), "seqs must run 1, 2, 3, ... with no gap"
    at = dict((key, seq) for seq, key in rows)
    assert len(at) == len(rows), "a key is stored twice"
    lost = {key: seq for key, seq in acked.items() if at.get(key) != seq}
    assert lost == {}, f"acknowledged events missing or moved: {list(lost.items())[:5]}"
    return len(rows)


@pytest.mark.timeout(300)
def test_acknowledged_appends_survive_sigkill(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    rng = random.Random(SEED)
    acked: dict[str, int] = {}
    stored_before = 0
    for cycle in range(CYCLES):
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(cycle), str(SEED + cycle)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # At least five: the first four lines may be only re-sent events of the killed writer.
            for _ in range(rng.randint(5, 40)):
                line = writer.stdout.readline()
                assert line, f"writer {cycle} exited early: {writer.stderr.read()}"
                for seq, key in json.loads(line):
                    # A re-sent event must come back with the seq it was first stored at.
                    assert acked.setdefault(key, seq) == seq, f"{key} moved to seq {seq}"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
            writer.stderr.close()
        stored = check_log(path, acked)
        assert stored > stored_before, f"cycle {cycle} stored nothing new"
        stored_before = stored
    assert len(acked) > CYCLES
