"""The house rules of runner/, checked: layers that import one way, small modules, private names kept.

The layer contracts live in pyproject.toml ([tool.importlinter]) and ``lint-imports``
runs them in ``make lint`` and ``make test``; the tests here prove those contracts catch
what they promise (an import planted against them breaks them) and check what
import-linter does not: module sizes, private names, and where Hydra's internals are used.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "runner"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in RUNNER.rglob("*.py") if "conf" not in p.relative_to(RUNNER).parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_is_over_400_lines() -> None:
    sizes = {_name(p): len(p.read_text().splitlines()) for p in _modules()}
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_private_name_is_imported_or_read_across_modules() -> None:
    """``from runner.x import _y`` and ``x._y`` on an imported runner module: a private name stays home."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        imported: set[str] = set()  # local names bound to runner modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runner"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.append(f"{_name(path)}: from {node.module} import {alias.name}")
                    target = ROOT / (node.module or "").replace(".", "/") / alias.name
                    if target.with_suffix(".py").exists() or target.is_dir():  # a module, not a name in one
                        imported.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{_name(path)}: {node.value.id}.{node.attr}")
    assert found == []


def test_hydra_internals_only_where_hydra_has_no_public_api() -> None:
    """Composing a sweep's job outside Hydra's own run has no public API: the API's composer (and the
    template sweeper, a Hydra plugin) use its config loader; no other module touches hydra._internal."""
    users = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(name.startswith("hydra._internal") for name in names):
                users.add(_name(path))
    assert users == {"runner.api.composing"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of runner/ and the contracts, for imports planted against them."""
    root = tmp_path_factory.mktemp("layout")
    shutil.copytree(RUNNER, root / "runner", ignore=shutil.ignore_patterns("conf", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_contracts_hold_for_runner_as_it_is(planted: Path) -> None:
    done = _lint(planted)
    assert done.returncode == 0, done.stdout
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("runner/language/ops.py", "import runner.jobs.task", "Layers"),  # the language reaching up to jobs
    ("runner/outputs/records.py", "import runner.scenarios.schema", "Layers"),  # outputs reading the model
    ("runner/language/ops.py", "import runner.oracles.checks", "Layers"),  # two siblings, independent
    ("runner/oracles/checks.py", "import runner.tfenv", "Oracles share no code"),
    ("runner/oracles/projections.py", "import runner.language.ops", "Oracles share no code"),
    ("runner/outputs/files.py", "import runner.outputs.summary", "No import cycles"),
])
def test_an_import_against_the_layers_breaks_its_contract(planted: Path, module: str, line: str,
                                                          broken: str) -> None:
    path = planted / module
    original = path.read_text()
    path.write_text(f"{original}\n{line}  # planted\n")
    try:
        done = _lint(planted)
    finally:
        path.write_text(original)
    assert done.returncode != 0
    section = done.stdout.split("Broken contracts", 1)[-1]
    assert broken in section, done.stdout


def test_the_checkout_is_ruff_clean() -> None:
    """What ``make lint`` runs first: ruff over the code, the tests, the benchmark and the plugin."""
    command = [str(LINT_IMPORTS.with_name("ruff")), "check", "--no-cache", "runner", "tests", "benchmarks",
               "hydra_plugins", "notebooks"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
