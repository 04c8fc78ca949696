"""A million-weight Dense layer checked by random projections: the whole check against the tape step.

Dense(1024) on a (64, 1024) batch holds 1024 x 1024 + 1024 weights; the kernel's and
the bias's gradients are each checked by random projections v.(J u) (above
``checks.fd_max_elements``) against float64 central differences: the layer's
pre-activation at the held weights (its float64 twin's output) moved by +-x @ s for a
kernel nudge s, or by +-s for a bias nudge, one float64 product per kernel projection.
This measures the runner's own ``timings.checks`` (every check of the run) against
``timings.tape_repeat`` (the compiled tape step alone, forward and backward, tracing
excluded) of the same job, run in process, as benchmarks/program.py does.
Prints one JSON object for benchmarks/run.py.

Usage: python benchmarks/layer.py REPS [PROJECTIONS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from program import measure

LAYER = {
    "name": "dense_1e6",
    "inputs": {"x": {"init": "normal", "shape": [64, 1024], "kind": "constant"}},
    "targets": {"y": {"layer": "Dense", "input": "x", "args": {"units": 1024}}, "loss": "reduce_mean(y**2)"},
    "gradients": {"loss": ["y.kernel", "y.bias"]},
}


def main() -> None:
    projections = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print(json.dumps(measure(LAYER, int(sys.argv[1]), f"checks.projections={projections}")))


if __name__ == "__main__":
    main()
