"""The harness stands alone: importing it pulls in no Ray, no chain code and no Docker."""

import subprocess
import sys

MODULES = [
    "gate",
    "loadgen",
    "measure",
    "measurement",
    "metrics",
    "plan",
    "prompts",
    "score",
    "sse",
]


def test_harness_imports_no_ray_chain_or_docker():
    code = (
        "import sys\n"
        + "".join(f"import harness.{name}\n" for name in [*MODULES, "tiny_model"])
        + "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'chain', 'docker'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
