"""``make mutation``: mutants of the oracle and check modules, each run against the tests written for them.

A verifier is proven by the bugs it catches. tests/test_planted.py plants wrong gradients in
TensorFlow; this plants small bugs in the runner's own oracle code instead (an operator or a
constant changed, a comparison flipped, a call dropped), one at a time, with mutmut, configured in
pyproject.toml's ``[tool.mutmut]`` (the modules, and the fast tests that target them). A mutant
the tests fail on is killed; one they pass is a survivor: either equivalent (the change cannot be
seen from outside) or a missing test. The kill rate per module, and every survivor, go into the
"Mutation testing" section of benchmarks/results.md.

Usage: python benchmarks/mutation.py [--max-children N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
HEADING = "## Mutation testing (make mutation)"


def mutmut(*args: str) -> str:
    mutmut_bin = Path(sys.executable).parent / "mutmut"
    done = subprocess.run([str(mutmut_bin), *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # mutmut run exits 1 when mutants survive
        raise SystemExit(f"mutmut {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


#: Why a survivor changes nothing a caller can see, recognised from the change itself (its "+" line).
EQUIVALENT = (
    ("zip(", "zip's strictness over sequences of equal length"),
    ("dtype=", "a dtype dropped where the values are float64 already"),
    ("asarray(", "a dtype dropped where the values are float64 already"),
    ("subtract(", "a dtype dropped where the values are float64 already"),
    ("errstate", "NumPy's warnings only: NaN and Inf are reported by the checks themselves"),
    ("reshape(-2", "NumPy reads any negative size as -1"),
    ("reshape(None)", "the values have that shape already: the reshape only asserts it"),
    ("replace=None", "None is as false as False"),
    ("isclose(", "the kink test's own tolerance: a kink's sides differ by far more"),
    ("blockwise(", "blocks or the whole array: the same numbers, another speed"),
    ("BLOCK_ELEMENTS", "blocks of another size: the same numbers, another speed"),
    ("fits(np.shape(None)", "blocks or the whole array: the same numbers, another speed"),
    ("failing = ", "which elements are looked at again for a kink: each is then judged on its own bound"),
    ("worst[", "which failing projection is reported, or a ratio of exactly 1: the same verdict"),
    ("err * bound", "which failing projection is reported: the same verdict"),
    ("err / bound", "which failing projection is reported: the same verdict"),
    ("isfinite(err) or", "a NaN on either side still fails, at the worst projection's own test"),
    ("size = np.abs(scale, )", "the weights in the gradient's own float dtype: any positive weights serve"),
    ("copy=None", "None is as false as False"),
    ("nan_to_num(size, copy=False, posinf", "NaN becomes 0.0 by NumPy's own default"),
    ("reach = max(float(u.max(", "a plain direction's step then reaches delta: differences as exact"),
    ("reach = max(2.0,", "a step of at most delta / 2: differences as exact"),
    ("u.max(initial=1.0)", "the reach is at least 1.0 already"),
    ("u.min(initial=1.0)", "the reach is at least 1.0 already: -min(u, 1) never exceeds it"),
)


def why(name: str) -> str:
    """The equivalence a survivor's change falls under, or a note that it needs a look."""
    shown = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "show", name], cwd=ROOT,
                           capture_output=True, text=True).stdout
    added = [line for line in shown.splitlines() if line.startswith("+") and not line.startswith("+++")]
    for pattern, reason in EQUIVALENT:
        if any(pattern in line for line in added):
            return f"equivalent: {reason}"
    return "to look at: " + (added[0].lstrip("+").strip() if added else "(no diff)")


def tally(listing: str) -> tuple[dict[str, Counter[str]], dict[str, list[str]]]:
    """Statuses per module, and the survivors' names per module, from ``mutmut results --all true``."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in listing.splitlines():
        if ": " not in line or "__mutmut_" not in line:
            continue
        name, status = line.strip().rsplit(": ", 1)
        module = name.split("__mutmut_")[0].rsplit(".", 1)[0]
        counts[module][status] += 1
        if status != "killed":
            survivors[module].append(f"`{name}` ({status}): {why(name)}")
    return counts, survivors


def section(counts: dict[str, Counter[str]], survivors: dict[str, list[str]]) -> str:
    lines = [HEADING, "", "| module | mutants | killed | survived | other | kill rate |",
             "|---|---|---|---|---|---|"]
    total, killed = 0, 0
    for module, found in sorted(counts.items()):
        n = sum(found.values())
        other = n - found["killed"] - found["survived"]
        lines.append(f"| `{module}` | {n} | {found['killed']} | {found['survived']} | {other} | "
                     f"{found['killed'] / n:.1%} |")
        total, killed = total + n, killed + found["killed"]
    lines.append(f"| all | {total} | {killed} | | | {killed / max(total, 1):.1%} |")
    lines += ["", "Survivors (each equivalent, or a test to write; `mutmut show <name>` prints the change):",
              ""]
    lines += [f"- {entry}" for module in sorted(survivors) for entry in survivors[module]] or ["- none"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=None)
    args = parser.parse_args()
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # every run from scratch: no stale verdicts
    mutmut("run", *(["--max-children", str(args.max_children)] if args.max_children else []))
    counts, survivors = tally(mutmut("results", "--all", "true"))
    if not counts:
        raise SystemExit("mutmut reported no mutants")
    text = section(counts, survivors)
    print(text)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if HEADING in old:
        start = old.index(HEADING)
        end = old.find("\n## ", start + len(HEADING))
        old = old[:start] + old[end + 1:] if end != -1 else old[:start]
    RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
