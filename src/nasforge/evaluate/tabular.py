"""Evaluation by table look-up: a CSV whose rows are architectures (NAS-Bench-201 and its kind).

The user names every column that matters, so any table of the same form works unchanged:
- the architecture column, whose text is the space's JSON form of a genome (`space.to_json`);
- the signal column: the only number a strategy ever sees as reward;
- the report column: looked up only for the answer a search returns;
- the cost: a column or an arithmetic expression of columns, e.g.
  `12*c10valid_train_s_per_epoch + c10valid_valid_s_per_eval`, the simulated seconds a query takes;
- any objective columns, passed along as metrics (latencies, sizes, ...).

A TabularEvaluator also keeps the budget of one search: queries and/or simulated seconds, where
asking again for an architecture already answered costs nothing new.
"""

from __future__ import annotations

import ast
import csv
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..budget import Budget
from ..errors import ConfigError, DataError
from ..space.base import Genome, SearchSpace
from .constraints import Constraint, Scalarization, scalarize, violation
from .evaluator import Evaluator, Result, Warmstart

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class CostExpression:
    """`+ - * /`, parentheses, numbers and column names; parsed with `ast`, never evaluated as code."""

    def __init__(self, text: str):
        self.text = text.strip()
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"cost expression {text!r}: not an arithmetic expression ({exc.msg})") from None
        self.columns: list[str] = []
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            pass
        elif isinstance(node, ast.Name):
            if node.id not in self.columns:
                self.columns.append(node.id)
        else:
            raise ConfigError(f"cost expression {self.text!r}: {ast.unparse(node)!r} is not allowed; "
                              "use numbers, column names, + - * / and parentheses")

    def evaluate(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        def run(node: ast.AST) -> Any:
            if isinstance(node, ast.BinOp):
                return _BINARY[type(node.op)](run(node.left), run(node.right))
            if isinstance(node, ast.UnaryOp):
                return _UNARY[type(node.op)](run(node.operand))
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                return float(node.value)
            if isinstance(node, ast.Name):
                return columns[node.id]
            raise AssertionError(f"{ast.unparse(node)!r} passed _check")  # _check allows nothing else

        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(run(self._tree), dtype=float)


class Table:
    """A CSV of architectures, one per row, with numeric columns read on demand."""

    def __init__(self, path: str | Path, arch_column: str):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DataError(f"table {self.path}: no such file")
        with self.path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise DataError(f"table {self.path}: empty file")
            self.columns = [h.strip() for h in header]
            rows = [r for r in reader if r]
        self._raw = rows
        self.arch_column = arch_column
        arch = self._column_index(arch_column)
        self.archs = [r[arch].strip() for r in rows]
        if not self.archs:
            raise DataError(f"table {self.path}: no rows")
        self.index: dict[str, int] = {}
        for i, a in enumerate(self.archs):
            if a in self.index:
                raise DataError(f"table {self.path}: architecture {a!r} appears twice (rows {self.index[a] + 2} and {i + 2})")
            self.index[a] = i
        self._numeric: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.archs)

    def _column_index(self, name: str) -> int:
        if name not in self.columns:
            raise DataError(f"table {self.path}: no column {name!r}; available: {', '.join(self.columns)}")
        return self.columns.index(name)

    def numeric(self, name: str) -> np.ndarray:
        """The column as floats; an unparseable cell is an error naming its row."""
        if name not in self._numeric:
            j = self._column_index(name)
            values = np.empty(len(self._raw))
            for i, row in enumerate(self._raw):
                try:
                    values[i] = float(row[j])
                except (ValueError, IndexError):
                    cell = row[j] if j < len(row) else "<missing>"
                    raise DataError(f"table {self.path}: column {name!r}, row {i + 2}: {cell!r} is not a number") from None
            self._numeric[name] = values
        return self._numeric[name]

    def cost(self, expression: str) -> np.ndarray:
        """Per-row cost of a column name or an arithmetic expression of columns."""
        expr = CostExpression(expression)
        values = expr.evaluate({c: self.numeric(c) for c in expr.columns})
        values = np.broadcast_to(values, (len(self),)).astype(float)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad):
            raise DataError(f"cost {expression!r}: row {int(bad[0]) + 2} gives {values[bad[0]]}, not a finite non-negative number")
        return values


@dataclass(frozen=True)
class TabularSpec:
    """Which columns mean what; nothing here knows any particular table."""

    arch_column: str = "arch_str"
    signal: str = "c10_valid_12ep"
    report: str = "c10_test_200ep_mean"
    cost: str | None = None
    objectives: tuple[str, ...] = ()


class TabularBenchmark:
    """A table read once and shared by many searches (each gets its own TabularEvaluator)."""

    def __init__(self, path: str | Path, spec: TabularSpec):
        self.spec = spec
        self.table = Table(path, spec.arch_column)
        self.signal = self.table.numeric(spec.signal)
        self.report_values = self.table.numeric(spec.report)
        self.costs = self.table.cost(spec.cost) if spec.cost else None
        self.objectives = {name: self.table.numeric(name) for name in spec.objectives}
        if spec.cost and self.costs is not None and not np.any(self.costs > 0):
            raise DataError(f"cost {spec.cost!r} is 0 for every row: a seconds budget would never run out")

    def row(self, arch: str) -> int | None:
        return self.table.index.get(arch)

    def ceiling(self) -> float:
        """The report value of the best-signal row (mean over ties): what a perfect search returns."""
        top = self.signal == np.nanmax(self.signal)
        return float(np.mean(self.report_values[top]))


@dataclass
class Answer:
    row: int | None
    reward: float | None
    cost: float
    new: bool
    arch: str = ""  # the genome's table key, so callers need not compute it again


@dataclass
class TabularEvaluator(Evaluator):
    """Answers queries of one search from a benchmark table and keeps that search's budget."""

    bench: TabularBenchmark
    space: SearchSpace
    budget: Budget = field(default_factory=Budget)
    key: Callable[[Genome], str] | None = None
    queries: int = 0
    seconds: float = 0.0
    # Limits on any column, checked before the query is charged, and the reward strategies see.
    constraints: tuple[Constraint, ...] = ()
    scalarization: Scalarization | None = None
    _seen: dict[str, Answer] = field(default_factory=dict, repr=False)

    @property
    def wants_gpu(self) -> bool:
        return False  # a table look-up

    def _arch(self, genome: Genome) -> str:
        text = self.key(genome) if self.key else self.space.to_json(genome)
        if not isinstance(text, str):
            raise DataError(f"the {self.space.name!r} space's genomes are not table keys; give `key=` a function genome -> arch text")
        return text

    @property
    def exhausted(self) -> bool:
        return self.budget.exhausted(self.queries, self.seconds)

    def query(self, genome: Genome) -> Answer:
        """The signal of a genome; charges the budget only the first time it is asked."""
        arch = self._arch(genome)
        seen = self._seen.get(arch)
        if seen is not None:
            return Answer(seen.row, seen.reward, 0.0, False, arch)
        row = self.bench.row(arch)
        cost = 0.0 if row is None or self.bench.costs is None else float(self.bench.costs[row])
        reward = None if row is None or math.isnan(self.bench.signal[row]) else float(self.bench.signal[row])
        answer = Answer(row, reward, cost, True, arch)
        self._seen[arch] = answer
        self.queries += 1
        self.seconds += cost
        return answer

    def columns(self, genome: Genome, names: Sequence[str]) -> dict[str, float] | None:
        """The genome's values of any table columns, free of charge (None if it is not in the table)."""
        row = self.bench.row(self._arch(genome))
        return None if row is None else {n: float(self.bench.table.numeric(n)[row]) for n in names}

    def evaluate(self, genome: Genome, seed: int = 0, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        # A table look-up trains nothing: no weights to start from, no curve to stop early.
        if self.constraints:
            values = self.columns(genome, sorted({c.measure for c in self.constraints}))
            reason = violation(self.constraints, values) if values is not None else None
            if values is not None and reason is not None:
                return Result("failed", metrics=values, error=f"infeasible, not queried: {reason}", cost=0.0)
        answer = self.query(genome)
        if answer.row is None:
            return Result("failed", error=f"{self._arch(genome)!r} is not in {self.bench.table.path.name}", cost=answer.cost)
        metrics = {self.bench.spec.signal: answer.reward, **{k: float(v[answer.row]) for k, v in self.bench.objectives.items()}}
        if answer.reward is None:
            return Result("failed", metrics=metrics, error=f"no {self.bench.spec.signal} value", cost=answer.cost)
        if self.scalarization is not None:
            metrics.update(self.columns(genome, self.scalarization.measures) or {})
        reward = scalarize(self.scalarization, answer.reward, metrics)
        return Result("complete", reward=reward, metrics=metrics, train_seconds=answer.cost, cost=answer.cost)

    def report(self, genome: Genome) -> float | None:
        """The reported number (e.g. final test accuracy) of a genome: for the returned answer only."""
        row = self.bench.row(self._arch(genome))
        return None if row is None else float(self.bench.report_values[row])


def load_benchmark(path: str | Path, arch_column: str = "arch_str", signal: str = "c10_valid_12ep",
                   report: str = "c10_test_200ep_mean", cost: str | None = None, objectives: Sequence[str] = ()) -> TabularBenchmark:
    """Read a benchmark table; every column name is the caller's, the defaults are NB201's."""
    return TabularBenchmark(path, TabularSpec(arch_column, signal, report, cost, tuple(objectives)))
