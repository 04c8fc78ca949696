"""Programs drawn at random from the language, for a campaign that cross-examines TensorFlow.

``scenario=fuzz`` is no program of its own: from the campaign's options (``fuzz.seed``,
``fuzz.index``, ``fuzz.ops``, ``fuzz.max_steps``) this module draws one, before any schema
sees the config, so the job is a plain program verified like any other (with
``checks.modes=all`` under ``experiment=fuzz``). The draw depends on nothing else: the same
seed and index give the same program on any machine and any launcher, and a run's saved
config reruns it. Each program has one to three inputs of one shape (a scalar, a vector or
a matrix), named steps in which an operand is an input or any earlier step (so an
intermediate feeds several later steps), and a scalar loss summing the last step times an
earlier one; its derivative is the gradient or, for small inputs, the Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.errors import ConfigError

#: Functions of one argument whose every derivative is finite and smooth on the reals, so a
#: disagreement is never a kink or a pole; binary operators, as the language writes them.
FUNCTIONS = ("sin", "cos", "tanh", "sigmoid", "softplus", "atan", "asinh", "square")
OPERATORS = ("+", "-", "*")
#: Steps beyond the elementwise, drawn only when ``fuzz.ops`` names them (the default campaign's
#: programs are drawn as they always were): a matrix product (``(a @ transpose(b)) @ c`` for matrices,
#: the inner product for vectors and scalars), a mean, and ``where``, whose kink a campaign's ``kink``
#: filter accounts for (runner/jobs/findings.py).
STRUCTURAL = ("matmul", "reduce_mean", "where")
SHAPES: tuple[tuple[int, ...], ...] = ((), (3,), (2, 3))
ROUTINE = "fuzz"  # scenario=fuzz's routine: drawn into a program before the schemas read it
#: A Hessian is drawn only for inputs this small (a forward-over-forward route is one pass per pair).
HESSIAN_MAX = 3


@dataclass
class FuzzConfig:
    """``fuzz.*``: the campaign, as experiment=fuzz sweeps it (conf/experiment/fuzz.yaml)."""

    programs: int = 100  # how many programs a campaign draws: fuzz.index takes 0 .. programs - 1
    seed: int = 0  # the campaign's seed
    index: int = 0  # which program of the campaign this job is
    ops: list[str] = field(default_factory=lambda: [*FUNCTIONS, *OPERATORS])
    max_steps: int = 4


def program(options: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """The program ``fuzz.seed`` and ``fuzz.index`` draw, as a program scenario's config."""
    import numpy as np

    fuzz = _checked(options)
    rng = np.random.default_rng([fuzz.seed, fuzz.index, *b"fuzz"])
    functions = [op for op in fuzz.ops if op in FUNCTIONS]
    operators = [op for op in fuzz.ops if op in OPERATORS]
    structural = [op for op in fuzz.ops if op in STRUCTURAL]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    names = [f"x{i}" for i in range(int(rng.integers(1, 4)))]
    inputs = {}
    for name in names:
        value = np.round(rng.uniform(-1.5, 1.5, shape), 3)
        constant = bool(rng.integers(2))
        inputs[name] = {"value": value.tolist(), "kind": "constant" if constant else "variable",
                        "watch": constant}
    targets: dict[str, str] = {}
    for k in range(1, int(rng.integers(1, fuzz.max_steps + 1)) + 1):
        known = [*names, *targets]

        def pick(known: list[str] = known) -> str:  # the last two names weigh more: chains, not only fans
            return str(rng.choice(known[-2:] if rng.random() < 0.5 else known))

        if structural and (not (functions or operators) or rng.random() < 0.3):
            targets[f"s{k}"] = _structural(str(rng.choice(structural)), pick, shape)
        elif operators and (not functions or rng.random() < 0.4):
            targets[f"s{k}"] = f"{pick()} {rng.choice(operators)} {pick()}"
        else:
            targets[f"s{k}"] = f"{rng.choice(functions)}({pick()})"
    last = list(targets)[-1]
    earlier = str(rng.choice([*names, *targets]))
    targets["loss"] = f"reduce_sum({last} * {earlier})"
    size = int(np.prod(shape))
    hessian = size <= HESSIAN_MAX and rng.random() < 0.5
    return {"routine": "program", "name": f"fuzz_{fuzz.seed}_{fuzz.index}",
            "description": f"Program {fuzz.index} of the campaign seeded {fuzz.seed} (runner/scenarios/"
                           "fuzzing.py): rerun it with the same fuzz.seed and fuzz.index.",
            "inputs": inputs, "targets": targets, "gradients": {"loss": names},
            "derivative": "hessian" if hessian else "gradient",
            **{k: v for k, v in scenario.items() if k not in ("routine", "name", "description")}}


def _structural(op: str, pick: Any, shape: tuple[int, ...]) -> str:
    """A step of ``op`` over drawn operands, of a shape every later step broadcasts with."""
    if op == "reduce_mean":
        return f"reduce_mean({pick()})"  # a scalar
    if op == "where":
        return f"where({pick()} > 0, {pick()}, {pick()})"
    if len(shape) == 2:  # (2, 3) @ (3, 2) @ (2, 3): the inputs' own shape again
        return f"({pick()} @ transpose({pick()})) @ {pick()}"
    return f"reduce_sum({pick()} * {pick()})"  # a vector's or a scalar's inner product


def is_campaign(config: Any) -> bool:
    """Whether a composed config (a sweep's) draws its programs: a campaign, whose end hunts findings."""
    from omegaconf import OmegaConf

    return OmegaConf.select(config, "scenario.routine", default=None) == ROUTINE


def as_drawn(config: dict[str, Any]) -> dict[str, Any]:
    """A job's config with ``scenario=fuzz`` replaced by the program it drew: what results.json and the
    report show (the run's .hydra/config.yaml keeps the seed and index, which draw it again)."""
    scenario = config.get("scenario")
    if not (isinstance(scenario, dict) and scenario.get("routine") == ROUTINE):
        return config
    try:
        return {**config, "scenario": program(config.get("fuzz") or {}, scenario)}
    except (ConfigError, TypeError):  # the job's own error says what is wrong with the options
        return config


def _checked(options: dict[str, Any]) -> FuzzConfig:
    fuzz = FuzzConfig(**options)
    drawable = (*FUNCTIONS, *OPERATORS, *STRUCTURAL)
    unknown = [op for op in fuzz.ops if op not in drawable]
    if unknown or not fuzz.ops:
        raise ConfigError(f"fuzz.ops: {', '.join(map(repr, unknown)) or 'none given'}: a campaign draws "
                          f"from {', '.join(drawable)}")
    if fuzz.max_steps < 1 or fuzz.max_steps > 32:
        raise ConfigError(f"fuzz.max_steps: {fuzz.max_steps} is not 1 to 32")
    if not 0 <= fuzz.index < fuzz.programs:
        raise ConfigError(f"fuzz.index: {fuzz.index} is not one of the campaign's 0 .. {fuzz.programs - 1}")
    return fuzz
