"""Read and validate evaluation inputs: tasks (JSONL) and outcomes (CSV).

Every problem is an `EvalInputError` naming the file and, where there is one, the line. Nothing here
knows which models or repositories the files hold.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

OUTCOME_COLUMNS = ("instance_id", "model", "resolved", "cost_usd")
TASK_FIELDS = ("instance_id", "repo", "problem_statement")
MAX_LISTED = 5
K = TypeVar("K", bound=str)


class EvalInputError(Exception):
    """A problem with an input file; the message names the file (and line) and how to fix it."""


@dataclass(frozen=True, slots=True)
class Task:
    instance_id: str
    repo: str
    problem_statement: str
    patch: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    resolved: int
    cost_usd: float | None
    line: int


@dataclass(frozen=True)
class Prices:
    fast: float
    strong: float


@dataclass
class Dataset:
    """Tasks aligned with the fast and strong model's outcomes, one entry per task, in task order."""

    tasks: list[Task]
    fast_model: str
    strong_model: str
    fast_resolved: list[int]
    strong_resolved: list[int]
    fast_cost: list[float]
    strong_cost: list[float]
    cost_source: str
    """`outcomes` (real per-task cost_usd) or `price` (per-lane price from --price)."""
    prices: Prices | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def repos(self) -> list[str]:
        return [t.repo for t in self.tasks]

    def subset(self, keep: Sequence[int]) -> Dataset:
        return Dataset(
            tasks=[self.tasks[i] for i in keep],
            fast_model=self.fast_model,
            strong_model=self.strong_model,
            fast_resolved=[self.fast_resolved[i] for i in keep],
            strong_resolved=[self.strong_resolved[i] for i in keep],
            fast_cost=[self.fast_cost[i] for i in keep],
            strong_cost=[self.strong_cost[i] for i in keep],
            cost_source=self.cost_source,
            prices=self.prices,
            notes=list(self.notes),
        )


@dataclass(frozen=True)
class ValueRule:
    """What a KEY=NUMBER option's number must be: `accepts(value)`, and what to say when it is not."""

    accepts: Callable[[float], bool]
    problem: str


def parse_setting(text: str, rules: Mapping[K, ValueRule], expected: str, flag: str, shown: str | None = None) -> tuple[K, float]:
    """`text` as KEY=NUMBER with KEY one of `rules` and the number as its rule wants (`--price` and
    `--target`); otherwise an EvalInputError naming `flag` and `shown` (the whole option, default
    `text`), saying `expected` when KEY is not one of `rules`."""
    shown = text if shown is None else shown
    key, sep, raw = text.partition("=")
    key = key.strip()
    found = next((k for k in rules if k == key), None)
    if not sep or found is None:
        raise EvalInputError(f"{flag} {shown!r}: expected {expected}")
    try:
        value = float(raw)
    except ValueError:
        raise EvalInputError(f"{flag} {shown!r}: {raw.strip()!r} is not a number") from None
    if not rules[found].accepts(value):
        raise EvalInputError(f"{flag} {shown!r}: {rules[found].problem}")
    return found, value


PRICE = ValueRule(lambda v: math.isfinite(v) and v >= 0, "prices must be finite and >= 0")
PRICE_RULES: dict[Literal["fast", "strong"], ValueRule] = {"fast": PRICE, "strong": PRICE}


def parse_prices(text: str) -> Prices:
    """`fast=X,strong=Y` (numbers >= 0, strong > 0)."""
    values: dict[str, float] = {}
    for part in text.split(","):
        key, value = parse_setting(part, PRICE_RULES, "fast=X,strong=Y (for example fast=0.8,strong=3)", "--price", shown=text)
        values[key] = value
    if set(values) != {"fast", "strong"}:
        raise EvalInputError(f"--price {text!r}: give both lanes, fast=X,strong=Y")
    if values["strong"] <= 0:
        raise EvalInputError(f"--price {text!r}: the strong lane's price must be > 0")
    return Prices(values["fast"], values["strong"])


def read_tasks(path: Path, need_patch: bool = False) -> list[Task]:
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EvalInputError(f"{shown}: tasks file not found") from None
    except OSError as exc:
        raise EvalInputError(f"{shown}: cannot read tasks file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise EvalInputError(f"{shown}:{line}: not valid UTF-8") from None
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        try:
            obj = json.loads(row)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{shown}:{number}: bad JSON line: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise EvalInputError(f"{shown}:{number}: each line must be a JSON object with {', '.join(TASK_FIELDS)}")
        missing = [k for k in TASK_FIELDS if not isinstance(obj.get(k), str) or (k != "problem_statement" and not obj[k])]
        if missing:
            raise EvalInputError(f"{shown}:{number}: missing or non-string field(s): {', '.join(missing)}")
        patch = obj.get("patch")
        if patch is not None and not isinstance(patch, str):
            raise EvalInputError(f"{shown}:{number}: field 'patch' must be a string")
        if need_patch and not patch:
            raise EvalInputError(f"{shown}:{number}: --signals gold needs a 'patch' (the reference diff) on every task")
        iid = obj["instance_id"]
        if iid in seen:
            raise EvalInputError(f"{shown}:{number}: duplicate instance_id {iid!r} (first on line {seen[iid]})")
        seen[iid] = number
        tasks.append(Task(iid, obj["repo"], obj["problem_statement"], patch, number))
    if not tasks:
        raise EvalInputError(f"{shown}: no tasks (expected one JSON object per line)")
    return tasks


def read_outcomes(path: Path) -> dict[str, dict[str, Outcome]]:  # noqa: PLR0912, PLR0915 (each column is checked with its own FILE:LINE message)
    """model -> instance_id -> outcome."""
    shown = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise EvalInputError(f"{shown}: outcomes file not found") from None
    except OSError as exc:
        raise EvalInputError(f"{shown}: cannot read outcomes file: {exc.strerror}") from None
    out: dict[str, dict[str, Outcome]] = {}
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise EvalInputError(f"{shown}: empty file; expected a header {','.join(OUTCOME_COLUMNS)}")
            names = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in OUTCOME_COLUMNS if c not in names]
            if missing:
                raise EvalInputError(f"{shown}:1: missing column(s) {', '.join(missing)}; the header must name {','.join(OUTCOME_COLUMNS)}")
            index = {c: names.index(c) for c in OUTCOME_COLUMNS}
            for row in reader:
                number = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < len(names):
                    raise EvalInputError(f"{shown}:{number}: {len(row)} field(s), the header has {len(names)}")
                iid, model = row[index["instance_id"]].strip(), row[index["model"]].strip()
                if not iid or not model:
                    raise EvalInputError(f"{shown}:{number}: empty instance_id or model")
                resolved_raw = row[index["resolved"]].strip()
                if resolved_raw not in ("0", "1"):
                    raise EvalInputError(f"{shown}:{number}: resolved must be 0 or 1, got {resolved_raw!r}")
                cost_raw = row[index["cost_usd"]].strip()
                cost: float | None = None
                if cost_raw:
                    try:
                        cost = float(cost_raw)
                    except ValueError:
                        raise EvalInputError(f"{shown}:{number}: cost_usd must be a number or empty, got {cost_raw!r}") from None
                    if not math.isfinite(cost) or cost < 0:
                        raise EvalInputError(f"{shown}:{number}: cost_usd must be finite and >= 0, got {cost_raw!r}")
                per_model = out.setdefault(model, {})
                if iid in per_model:
                    first = per_model[iid].line
                    raise EvalInputError(f"{shown}:{number}: duplicate outcome for {iid!r} and model {model!r} (first on line {first})")
                per_model[iid] = Outcome(int(resolved_raw), cost, number)
        except csv.Error as exc:
            raise EvalInputError(f"{shown}:{reader.line_num}: bad CSV: {exc}") from None
        except UnicodeDecodeError:
            raise EvalInputError(f"{shown}: not valid UTF-8") from None
    if not out:
        raise EvalInputError(f"{shown}: no outcome rows")
    return out


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def load_dataset(
    tasks_path: Path,
    outcomes_path: Path,
    fast_model: str,
    strong_model: str,
    prices: Prices | None = None,
    need_patch: bool = False,
) -> Dataset:
    tasks = read_tasks(tasks_path, need_patch)
    outcomes = read_outcomes(outcomes_path)
    for role, model in (("--fast", fast_model), ("--strong", strong_model)):
        if model not in outcomes:
            raise EvalInputError(f"{outcomes_path}: {role} model {model!r} has no rows; models in the file: {', '.join(sorted(outcomes))}")
    if fast_model == strong_model:
        raise EvalInputError(f"--fast and --strong are the same model ({fast_model!r})")
    for model in (fast_model, strong_model):
        missing = [t.instance_id for t in tasks if t.instance_id not in outcomes[model]]
        if missing:
            raise EvalInputError(
                f"{outcomes_path}: {len(missing)} task(s) from {tasks_path} have no outcome for model {model!r}: {_listing(missing)}"
            )
    fast_rows = [outcomes[fast_model][t.instance_id] for t in tasks]
    strong_rows = [outcomes[strong_model][t.instance_id] for t in tasks]
    rows = fast_rows + strong_rows
    with_cost = [r for r in rows if r.cost_usd is not None]
    notes: list[str] = []
    known = {t.instance_id for t in tasks}
    extra = {iid for model in (fast_model, strong_model) for iid in outcomes[model] if iid not in known}
    if extra:
        notes.append(f"{len(extra)} outcome row(s) name tasks not in {tasks_path.name}; they are ignored")
    if len(with_cost) == len(rows):
        fast_cost = [float(r.cost_usd or 0.0) for r in fast_rows]
        strong_cost = [float(r.cost_usd or 0.0) for r in strong_rows]
        if prices is not None:
            notes.append("--price ignored: the outcomes carry real per-task cost_usd")
        if sum(strong_cost) <= 0:
            raise EvalInputError(f"{outcomes_path}: every cost_usd of the strong model is 0; costs cannot be compared")
        return Dataset(tasks, fast_model, strong_model, [r.resolved for r in fast_rows], [r.resolved for r in strong_rows],
                       fast_cost, strong_cost, "outcomes", None, notes)
    if with_cost:
        first = min((r for r in rows if r.cost_usd is None), key=lambda r: r.line)
        raise EvalInputError(
            f"{outcomes_path}:{first.line}: cost_usd is empty here but set on other rows; give every row of "
            f"{fast_model!r} and {strong_model!r} a cost, or none (and pass --price fast=X,strong=Y)"
        )
    if prices is None:
        raise EvalInputError(
            f"{outcomes_path}: cost_usd is empty for {fast_model!r} and {strong_model!r}; pass --price fast=X,strong=Y "
            "(the per-task cost of each lane, e.g. list prices per million tokens: --price fast=0.8,strong=3)"
        )
    n = len(tasks)
    return Dataset(tasks, fast_model, strong_model, [r.resolved for r in fast_rows], [r.resolved for r in strong_rows],
                   [prices.fast] * n, [prices.strong] * n, "price", prices, notes)
