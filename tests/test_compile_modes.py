"""Each compile mode gives what the same code gives in TensorFlow in that mode, and so does its snippet.

The guide's control-flow example (``if x > 0.0: result = v0 else: result = v1**2``) is
written below in plain TensorFlow, run eagerly and wrapped in ``tf.function`` (with
and without XLA): eagerly Python's ``if`` records one branch and dv1 is None; traced,
AutoGraph turns it into ``tf.cond``, which records both, and dv1 is 0.0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.routines import run_routine
from runner.tfenv import tf
from tests.conftest import assert_passed

MODES = ["eager", "function", "xla"]


def _the_guides_code(mode: str, x: float) -> dict[str, float | None]:
    """The guide's cells as a user writes them, compiled as ``mode`` says."""
    v0, v1 = tf.Variable(2.0), tf.Variable(2.0)

    def step(x: tf.Tensor) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            if x > 0.0:  # noqa: SIM108  (the guide's own statement: AutoGraph converts it)
                result = v0
            else:
                result = v1**2
        return tape.gradient(result, [v0, v1, x])

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    grads = step(tf.constant(x))
    return dict(zip(["dresult/dv0", "dresult/dv1", "dresult/dx"],
                    [None if g is None else float(g) for g in grads], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("x", [1.0, -1.0])
@pytest.mark.parametrize("mode", MODES)
def test_control_flow_gives_tensorflows_answer_in_each_mode(load: Callable[..., Any], tmp_path: Path,
                                                           mode: str, x: float) -> None:
    want = _the_guides_code(mode, x)
    assert want["dresult/dx"] is None
    assert want["dresult/dv1" if x > 0 else "dresult/dv0"] == (None if mode == "eager" else 0.0)
    outcome = assert_passed(run_routine(load("scenario=guide/control_flow", f"compile={mode}",
                                             f"scenario.inputs.x.value={x}")))
    assert {k: None if v is None else float(v) for k, v in outcome.gradients.items()} == want
    if mode != "eager":
        untaken = "dresult/dv1" if x > 0 else "dresult/dv0"
        assert "tf.cond, which records both branches" in outcome.notes[untaken]
    script = tmp_path / "snippet.py"
    script.write_text(outcome.snippet)
    printed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                             check=True).stdout.strip().splitlines()[-1]
    assert json.loads(printed) == want
