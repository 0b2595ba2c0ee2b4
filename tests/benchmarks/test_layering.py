"""The house rules no import contract can state: generic code names no model and no strategy.

Which package may import which is stated as import-linter contracts (.importlinter, checked
by tests/test_architecture.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nfbench.benchmarks.running.strategies import available_strategies

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAMES = re.compile(r"uflow|hgad|ccnf|cflow|csflow|fastflow|msflow|patchcore", re.I)
STRATEGY_HOME = ROOT / "benchmarks" / "running" / "strategies"


def _code_strings(tree: ast.AST) -> list[ast.Constant]:
    """String literals that are not docstrings."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def strategy_names_in(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, literal) of every string literal that is exactly a strategy's name."""
    return [(node.lineno, node.value) for node in _code_strings(ast.parse(source))
            if node.value in names]


def test_benchmarks_name_no_model():
    """Adding a model touches only its folder: benchmarks/ knows models through the registry
    and their declared capabilities, never by name (presets and READMEs are data, not code)."""
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in sorted((ROOT / "benchmarks").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if MODEL_NAMES.search(line)]
    assert offenders == []


def test_generic_modules_name_no_strategy():
    """Only the strategies' own folder names a strategy: the rest asks a strategy what it is
    (single phase, sort rank, skip rule) instead of testing for "joint" or "own"."""
    names = set(available_strategies())
    offenders = [f"{path.relative_to(ROOT)}:{line}: {value!r}"
                 for path in sorted((ROOT / "benchmarks").rglob("*.py"))
                 if STRATEGY_HOME not in path.parents
                 for line, value in strategy_names_in(path.read_text(), names)]
    assert offenders == []


def test_the_strategy_name_check_sees_comparisons_but_not_prose():
    source = ('"""joint trains once."""\n'
              'def f(rec):\n'
              '    """A docstring may say own."""\n'
              '    help = "finetune, replay or own"\n'
              '    return rec.strategy == "joint"\n')
    assert strategy_names_in(source, {"joint", "own", "finetune", "replay"}) == [(5, "joint")]
