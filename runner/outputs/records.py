"""Reading a saved ``results.json`` as untrusted input.

A results folder may come from someone else: ``tape-runner-report`` must be able
to rebuild it without reading anything outside it, following a symbolic link out
of it, or stopping on a malformed record. :func:`read` opens the file without
following links, bounds its size, and checks every field the reports and the
sweep summary read, so that what reaches them has the shape they expect. A
record that fails is refused with one line naming the field.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.outputs.files import MAX_LISTED, RESULTS

MAX_BYTES = 64 * 2**20  # far above what a job writes (arrays past 10,000 elements are summarised)
#: Separators (',') in one results.json, counted before it is parsed: what bounds the values it can hold
#: (a job's record holds a few hundred arrays of at most MAX_LISTED elements, and its texts).
MAX_VALUES = 2_000_000
STATUSES = ("ok", "error", "check_failed", "unverified")
#: A plot is a PNG beside results.json, named by the run: a bare file name, nothing to resolve.
PLOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.png\Z")
_NON_FINITE = ("NaN", "Infinity", "-Infinity")

Validator = Callable[[Any, str], None]


class Rejected(ValueError):
    """A results folder or record that cannot be trusted, with a one-line reason."""


def _fail(where: str, what: str, value: Any) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise Rejected(f"{where}: expected {what}, got {shown}")


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        _fail(where, "a string", value)


def _optional_text(value: Any, where: str) -> None:
    if value is not None:
        _text(value, where)


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) or value in _NON_FINITE):
        _fail(where, "a number", value)


def _seconds(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, "a number of seconds", value)


def _optional_number(value: Any, where: str) -> None:
    if value is not None:
        _number(value, where)


def _scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str | int | float):
        _fail(where, "a string, number, boolean or null", value)


def _array(value: Any, where: str) -> None:
    """A gradient, input or value: null, a number, a rectangular list of numbers, or a summary."""
    if value is None:
        return
    if isinstance(value, dict):
        shape = value.get("shape")
        if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                for n in shape)):
            _fail(f"{where}.shape", "a list of sizes", shape)
        for key in ("min", "max"):
            _number(value.get(key), f"{where}.{key}")
        return
    if isinstance(value, list):
        import numpy as np

        try:
            array = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            _fail(where, "a rectangular array of numbers", value)
        if array.size > MAX_LISTED:
            raise Rejected(f"{where}: lists {array.size:,} elements; a run lists at most {MAX_LISTED:,} "
                           "(larger arrays are summarised)")
        return
    _number(value, where)


def _mapping_of(check: Validator) -> Validator:
    def validate(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        for key, item in value.items():
            check(item, f"{where}.{key}")
    return validate


def _list_of(check: Validator) -> Validator:
    def validate(value: Any, where: str) -> None:
        if not isinstance(value, list):
            _fail(where, "a list", value)
        for index, item in enumerate(value):
            check(item, f"{where}[{index}]")
    return validate


def _optional(check: Validator) -> Validator:
    def validate(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)
    return validate


def _fields(spec: dict[str, Validator], required: tuple[str, ...] = ()) -> Validator:
    """An object holding ``required`` keys, whose listed keys pass their validators; others are kept."""
    def validate(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        for key in required:
            if key not in value:
                raise Rejected(f"{where}: the key {key!r} is missing")
        for key, check in spec.items():
            if key in value:
                check(value[key], f"{where}.{key}" if where else key)
    return validate


def _status(value: Any, where: str) -> None:
    if value not in STATUSES:
        _fail(where, f"one of {', '.join(STATUSES)}", value)


def _boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        _fail(where, "true or false", value)


def _plot(value: Any, where: str) -> None:
    if not (isinstance(value, str) and PLOT_NAME.match(value)):
        _fail(where, "the file name of a PNG beside results.json", value)


def _optional_count(value: Any, where: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        _fail(where, "a whole number or null", value)


def _target(value: Any, where: str) -> None:
    """A program step: an expression, a Keras layer step ({layer, input, args, training}), a gradient
    step ({gradient, wrt}), an expression the tape may not record ({expression, recorded}) or a list
    target (a list of step names)."""
    if isinstance(value, dict) and "gradient" in value:
        _fields({"gradient": _text, "wrt": _text}, ("gradient", "wrt"))(value, where)
    elif isinstance(value, dict) and "expression" in value:
        _fields({"expression": _text, "recorded": _boolean}, ("expression",))(value, where)
    elif isinstance(value, list):
        _list_of(_text)(value, where)
    elif isinstance(value, dict):
        _fields({"layer": _text, "input": _text, "args": _mapping_of(lambda v, w: None)}, ("layer", "input"))(
            value, where)
    else:
        _text(value, where)


_CHECK = _fields({"name": _text, "passed": _boolean, "max_abs_err": _optional_number,
                  "tol": _optional_number, "detail": _text}, ("name", "passed", "max_abs_err", "tol"))
_SCENARIO = _fields({"name": _scalar, "description": _text, "function": _optional_text, "hidden": _text,
                     "case": _scalar, "targets": _mapping_of(_target), "outputs": _mapping_of(_text),
                     "layers": _list_of(_scalar), "activation": _scalar, "in_features": _scalar,
                     "loss": _scalar})
_RECORD = _fields({
    "scenario": _optional_text,
    "status": _status,
    "message": _optional_text,
    "job": _fields({"num": _optional_count, "overrides": _list_of(_text)}),
    "gradients": _mapping_of(_array),
    "inputs": _mapping_of(_array),
    "values": _mapping_of(_array),
    "checks": _list_of(_CHECK),
    "notes": _mapping_of(_text),
    "analytic": _mapping_of(_text),
    "plots": _list_of(_plot),
    "config": _fields({"scenario": _SCENARIO, "seed": _scalar, "dtype": _scalar}),
    "environment": _fields({"python": _scalar, "platform": _scalar, "cpu": _scalar, "cpu_count": _scalar,
                            "devices": _optional(_list_of(_text)), "git_commit": _optional_text,
                            "git_dirty": _scalar,
                            "packages": _mapping_of(_scalar)}),
    "timings": _mapping_of(_seconds),
    "command": _text,
    "rerun_command": _text,
    "snippet": _text,
    "reference_error": _mapping_of(_optional_number),
    "watched_variables": _list_of(_text),
})


def validate(record: Any) -> dict[str, Any]:
    """``record`` itself, once every field the reports and the summary read has the expected shape."""
    if not isinstance(record, dict):
        raise Rejected(f"expected a JSON object at the top level, got {type(record).__name__}")
    _RECORD(record, "")
    return record


def read_inside(path: Path, limit: int = MAX_BYTES) -> bytes:
    """A file of a results folder, read without following a symbolic link at it or at its folder, and
    refused above ``limit`` bytes."""
    if path.parent.is_symlink():
        raise Rejected(f"{path.parent.name} is a symbolic link; it is not followed")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as err:
        linked = " (a symbolic link is not followed)" if path.is_symlink() else ""
        raise Rejected(f"cannot open {path.name}: {err.strerror or err}{linked}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Rejected(f"{path.name} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise Rejected(f"{path.name} is {info.st_size:,} bytes, above the limit of {limit:,}")
        raw = handle.read(limit + 1)
        if len(raw) > limit:  # it grew while being read
            raise Rejected(f"{path.name} is above the limit of {limit:,} bytes")
        return raw


def read(run_dir: Path) -> dict[str, Any]:
    """The validated record in ``run_dir``; neither the folder nor the file may be a symbolic link."""
    raw = read_inside(run_dir / RESULTS)
    if (separators := raw.count(b",")) > MAX_VALUES:
        raise Rejected(f"{RESULTS} holds {separators:,} separated values, above the limit of {MAX_VALUES:,}")
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Rejected(f"{RESULTS} is not valid JSON: {err}") from None
    except RecursionError:
        raise Rejected(f"{RESULTS} is nested too deeply") from None
    return validate(record)
