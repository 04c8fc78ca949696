"""report.md, built from a run's saved ``results.json`` alone.

Because the report reads only the saved record, it can be rebuilt later from the
run directory without recomputing anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REPORT = "report.md"


def _value(value: Any) -> str:
    """A gradient or input in a table cell: numbers as they are, arrays summarised."""
    if value is None:
        return "null"
    if isinstance(value, dict):  # a summary of an array too large to list
        return f"array {tuple(value['shape'])}, min {value['min']}, max {value['max']}"
    if isinstance(value, list):
        try:
            array = np.asarray(value, dtype=np.float64)
        except ValueError:
            return str(value)
        head = ", ".join(f"{v:.6g}" for v in array.ravel()[:4])
        more = ", …" if array.size > 4 else ""
        return f"array {array.shape}: [{head}{more}]"
    return repr(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _function_lines(scenario: dict[str, Any]) -> list[str]:
    if "function" in scenario:
        return [f"`{scenario.get('target') or 'y'} = {scenario['function']}`", ""]
    if "targets" in scenario:
        return [f"`{name} = {text}`  " for name, text in scenario["targets"].items()] + [""]
    return [f"`y = xW + b`, loss `{scenario.get('loss')}`", ""]


def render_markdown(results: dict[str, Any]) -> str:
    config = results.get("config") or {}
    scenario = config.get("scenario") or {}
    lines = [f"# {results.get('scenario')}: {results.get('status')}", ""]
    if results.get("message"):
        lines += [f"**Error:** {results['message']}", ""]
    if scenario.get("description"):
        lines += [scenario["description"], ""]
    lines += ["## Function", "", *_function_lines(scenario)]
    if results.get("analytic"):
        lines += _table(["gradient", "analytic derivative"],
                        [[label, f"`{text}`"] for label, text in results["analytic"].items()])
    notes = results.get("notes") or {}
    if results.get("gradients"):
        lines += ["## Gradients", ""]
        lines += _table(["gradient", "value", "note"],
                        [[label, _value(v), notes.get(label, "")]
                         for label, v in results["gradients"].items()])
    if results.get("checks"):
        lines += ["## Checks", ""]
        lines += _table(["check", "passed", "max abs error", "tolerance", "detail"],
                        [[c["name"], "yes" if c["passed"] else "**NO**",
                          _value(c["max_abs_err"]), _value(c["tol"]), c.get("detail", "")]
                         for c in results["checks"]])
    if results.get("inputs"):
        lines += ["## Inputs", ""]
        lines += _table(["input", "value"], [[k, _value(v)] for k, v in results["inputs"].items()])
    for plot in results.get("plots") or []:
        lines += [f"![{plot}]({plot})", ""]
    env = results.get("environment") or {}
    if env:
        packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items())
        lines += ["## Environment", "",
                  f"- Python {env.get('python')} on {env.get('platform')} "
                  f"({env.get('cpu_count')} CPUs; devices: {', '.join(env.get('devices') or [])})",
                  f"- {packages}",
                  f"- seed {config.get('seed')}, dtype {config.get('dtype')}",
                  f"- source: {env.get('git_commit') or 'not a git checkout'}"
                  + (" (uncommitted changes)" if env.get("git_dirty") else ""), ""]
    if results.get("timings"):
        lines += ["## Timings (seconds)", ""]
        lines += _table(list(results["timings"]),
                        [[f"{v:.4f}" for v in results["timings"].values()]])
    if results.get("command"):
        lines += ["## Reproduce", "", "```sh", results["command"],
                  results.get("rerun_command", ""), "```", ""]
    return "\n".join(lines)
