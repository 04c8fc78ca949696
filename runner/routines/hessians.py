"""What a Hessian adds to a program's results: its curvature, its heatmap, and one Newton step."""

from __future__ import annotations

import math

import numpy as np

from runner.oracles.checks import compare
from runner.oracles.derivative_checks import weighted
from runner.oracles.differences import float64_differences
from runner.oracles.tolerance import Tolerance
from runner.result import Check, Heatmap, Outcome
from runner.routines.program_view import ProgramView
from runner.routines.support import check_dtype
from runner.scenarios import derivative_specs
from runner.tfenv import tf

#: A Hessian's eigenvalues are reported up to this many source elements, its heatmap up to HEATMAP_MAX.
CURVATURE_MAX = 256


HEATMAP_MAX = 16


def curvature(outcome: Outcome, label: str, target: str, source: str, got: np.ndarray) -> None:
    """A small Hessian's eigenvalues, as an (n, n) matrix over the flattened source, in the values, and in
    the note what they say of the target around the source: a bowl, a ridge or a saddle."""
    n = math.isqrt(np.size(got))  # a Hessian is shaped like its source twice
    if n > CURVATURE_MAX:
        return
    matrix = np.asarray(got, dtype=np.float64).reshape(n, n)
    if not np.isfinite(matrix).all():
        return
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    outcome.values[f"{label} eigenvalues"] = eigenvalues
    low, high = float(eigenvalues[0]), float(eigenvalues[-1])
    # An eigenvalue this close to 0 has no sign in the run's precision: the Hessian's own rounding
    # (eps of its dtype, times its size and largest eigenvalue) moves it that far.
    dtype = np.asarray(got).dtype
    eps = float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)
    tol = 8 * n * eps * max(abs(low), abs(high))
    where = f"sum({target}) curves"
    flat = (f"; eigenvalues within {tol:.2g} of 0 (the rounding of {dtype}) are taken as 0: flat to second "
            f"order along some direction of {source}")
    if low > tol:
        shape = f"positive definite: {where} up in every direction of {source}"
    elif high < -tol:
        shape = f"negative definite: {where} down in every direction of {source} (near a maximum)"
    elif low < -tol and high > tol:
        shape = f"indefinite: {where} up along some directions of {source} and down along others (a saddle)"
    elif high > tol:
        shape = f"positive semi-definite: {where} up or not at all in each direction of {source}{flat}"
    elif low < -tol:
        shape = f"negative semi-definite: {where} down or not at all in each direction of {source}{flat}"
    else:
        shape = f"zero: sum({target}) is flat to second order in every direction of {source}"
    outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label),
                                                   f"eigenvalues from {low:.6g} to {high:.6g}, {shape}"]))


def heatmaps(program: ProgramView, outcome: Outcome, taken: int) -> list[Heatmap]:
    """Each Hessian of a source of at most HEATMAP_MAX elements, drawn cell by cell with its rows and
    columns named by element. ``taken`` figures come first; the first figure is named after the scenario."""
    scenario, found = program.scenario, []
    if scenario.derivative != "hessian":
        return []
    for target, sources in program.plan.items():
        for source in sources:
            label = derivative_specs.label("hessian", target, source)
            got, shape = outcome.gradients.get(label), program.shapes[source]
            n = math.prod(shape)
            if got is None or n > HEATMAP_MAX:
                continue
            names = [f"{source}[{', '.join(map(str, i))}]" for i in np.ndindex(shape)] if shape else [source]
            text = scenario.targets[target]
            count = taken + len(found)
            found.append(Heatmap(f"{scenario.name}_{count + 1}.png" if count else f"{scenario.name}.png",
                                 f"{label}: the Hessian of {text if isinstance(text, str) else target}",
                                 names, np.asarray(got, dtype=np.float64).reshape(n, n)))
    return found


def newton(program: ProgramView, outcome: Outcome, label: str, target: str, source: str, hessian: np.ndarray,
           oracle: np.ndarray | None, delta: float) -> list[Check]:
    """One Newton step -solve(H + damping I, g) in TensorFlow, shaped like the source, and its check
    against the step NumPy solves from the float64 oracle's H and g (second and first differences).
    The tape's g it solves with is recorded too (``d<target>/d<source>``), checked against the first
    differences."""
    scenario, run = program.scenario, program.run
    point = program.point(source)
    n, name = point.size, f"{label} Newton step vs float64 solve from second and first differences"
    weight = program.weights[target]
    gradient = program.vjp(target, source)(weight)  # the tape's gradient, on a fresh tape
    g_label = derivative_specs.label("gradient", target, source)
    outcome.values[g_label] = gradient.reshape(point.shape)
    checks: list[Check] = []
    tol = run.tolerances().float64_differences
    if oracle is not None:
        grad64 = float64_differences(program.forward_fn(target, source), point, weight, delta)
        checks.append(compare(f"{g_label} (the Newton step's g) vs float64 central differences "
                              "(every element)", gradient.reshape(point.shape), grad64, tol))
    dtype = check_dtype(run)  # tf.linalg.solve has no 16-bit kernels
    matrix = tf.reshape(tf.cast(hessian, dtype), (n, n)) + scenario.damping * tf.eye(n, dtype=dtype)
    try:
        step = tf.linalg.solve(matrix, -tf.reshape(tf.constant(gradient, dtype), (n, 1))).numpy()
    except tf.errors.InvalidArgumentError:  # "Input matrix is not invertible."
        return [*checks, Check(name, False, None, None, "H + damping*I is singular in TensorFlow's solve; "
                                                        "raise scenario.damping")]
    step = step.reshape(point.shape)
    outcome.values[f"{label} Newton step"] = step
    f = weighted(program.forward_fn(target, source), weight)
    solved = "" if dtype == program.dtype else (
        f" (solved in {dtype.name}: tf.linalg.solve has no {program.dtype.name} kernel)")
    outcome.notes[label] = "; ".join(filter(None, [outcome.notes.get(label), (
        f"one Newton step -solve(H + {scenario.damping:g} I, g){solved} on {source} takes sum({target}) "
        f"from {f(point):.6g} to {f(point + step):.6g}")]))
    if oracle is None:
        return checks
    matrix64 = oracle.reshape(n, n) + scenario.damping * np.eye(n)
    try:
        want = np.linalg.solve(matrix64, -grad64.reshape(n)).reshape(point.shape)
        cond = float(np.linalg.cond(matrix64))
    except np.linalg.LinAlgError as err:
        return [*checks, Check(name, False, None, None, f"the oracle's H + damping*I is singular ({err}); "
                                                        "raise scenario.damping")]
    check = compare(name, step, want, Tolerance(rtol=tol.rtol * cond, atol=tol.atol * cond))
    scaled = f"tolerance scaled by cond(H + damping I) = {cond:.3g}"
    check.detail = "; ".join(filter(None, [check.detail, scaled]))
    return [*checks, check]
