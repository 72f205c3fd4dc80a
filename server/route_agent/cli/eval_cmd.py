"""`route-agent eval`, `route-agent policy calibrate` and `route-agent policy diff`.

The evaluation packages (numpy, matplotlib: the `eval` extra) are imported inside the commands so
that the CLI starts fast. Input problems exit 2 with `route-agent: FILE:LINE: message`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from route_agent.cli.errors import EXIT_CONFIG, fail
from route_agent.policy import LoadedPolicy, PolicyCache, PolicyError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@contextlib.contextmanager
def _input_errors() -> Iterator[None]:
    """An evaluation input problem (EvalInputError) exits 2 with its message."""
    from route_agent.eval.data import EvalInputError

    try:
        yield
    except EvalInputError as exc:
        fail(str(exc))


def _load_policy(path: Path | None) -> LoadedPolicy:
    try:
        return PolicyCache().load(path) if path is not None else PolicyCache().load()
    except PolicyError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(EXIT_CONFIG) from None


def _inputs(func: F) -> F:
    """Options every evaluation command shares."""
    options = [
        click.option("--tasks", "tasks_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Tasks JSONL: instance_id, repo, problem_statement (and patch for --signals gold)."),
        click.option("--outcomes", "outcomes_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Outcomes CSV: instance_id,model,resolved,cost_usd."),
        click.option("--ledger", "ledger_path", default=None,
                     help="Recorded attempts (SQLite path or postgresql:// DSN) instead of --tasks/--outcomes; "
                          "runs with attempts in both lanes are the tasks."),
        click.option("--fast", "fast_model", default=None, help="The fast lane's model name as written in the outcomes."),
        click.option("--strong", "strong_model", default=None, help="The strong lane's model name as written in the outcomes."),
        click.option("--signals", "mode", type=click.Choice(["pre-task", "gold"]), default="pre-task", show_default=True,
                     help="pre-task: statement, repository, named files; gold: the reference patch (a leaky upper bound)."),
        click.option("--catch-rate", "--verifier-recall", "recall", type=click.FloatRange(0, 1), default=0.8, show_default=True,
                     help="Cascade: P(verification fails the attempt | the fast attempt did not resolve the task) "
                          "(old name --verifier-recall)."),
        click.option("--false-alarm-rate", "--verifier-fpr", "fpr", type=click.FloatRange(0, 1), default=0.1, show_default=True,
                     help="Cascade: P(verification fails the attempt | the fast attempt resolved the task) "
                          "(old name --verifier-fpr)."),
        click.option("--price", "price", default=None,
                     help="fast=X,strong=Y: per-task cost of each lane, required when cost_usd is empty (e.g. fast=0.8,strong=3)."),
        click.option("--list-models", "list_models", is_flag=True,
                     help="Print the models in --outcomes (tasks and resolved per model) and exit."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


EVAL_EXTRA_HINT = "pip install 'route-agent[eval]'"


def require_eval_extra(command: str) -> None:
    """One line with the install command when the `eval` extra (numpy) is missing, never a traceback."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        fail(f"`route-agent {command}` needs the evaluation extra (numpy, matplotlib); install it with: {EVAL_EXTRA_HINT}")


def list_models_and_exit(outcomes_path: Path | None, as_json: bool) -> NoReturn:
    from route_agent.eval.data import read_outcomes

    if outcomes_path is None:
        fail("--list-models needs --outcomes OUTCOMES.csv")
    with _input_errors():
        outcomes = read_outcomes(outcomes_path)
    rows = [{"model": m, "tasks": len(o), "resolved": sum(r.resolved for r in o.values())} for m, o in sorted(outcomes.items())]
    if as_json:
        click.echo(json.dumps({"outcomes": str(outcomes_path), "models": rows}, indent=2))
    else:
        click.echo(f"models in {outcomes_path}:")
        for row in rows:
            click.echo(f"  {row['model']}  ({row['resolved']}/{row['tasks']} resolved)")
    raise SystemExit(0)


def _dataset(tasks_path: Path | None, outcomes_path: Path | None, ledger_path: str | None, fast_model: str | None,
             strong_model: str | None, price: str | None, mode: str, list_models: bool = False, as_json: bool = False) -> Any:
    if list_models:
        list_models_and_exit(outcomes_path, as_json)
    from route_agent.eval.data import load_dataset, parse_prices

    if ledger_path is not None:
        from route_agent.eval.ledger_source import dataset_from_ledger

        if tasks_path is not None or outcomes_path is not None:
            fail("give either --ledger or --tasks/--outcomes, not both")
        if mode == "gold":
            fail("--signals gold needs reference patches; the ledger has none (use --tasks with a 'patch' field)")
        with _input_errors():
            return dataset_from_ledger(ledger_path, parse_prices(price) if price is not None else None)
    missing = [name for name, value in (("--tasks", tasks_path), ("--outcomes", outcomes_path), ("--fast", fast_model),
                                         ("--strong", strong_model)) if value is None]
    if missing:
        fail(f"missing {', '.join(missing)} (give --tasks TASKS.jsonl --outcomes OUTCOMES.csv --fast MODEL --strong MODEL)")
    assert tasks_path is not None and outcomes_path is not None and fast_model is not None and strong_model is not None
    with _input_errors():
        prices = parse_prices(price) if price is not None else None
        return load_dataset(tasks_path, outcomes_path, fast_model, strong_model, prices, need_patch=mode == "gold")


def _sources(loaded: LoadedPolicy) -> list[str]:
    return list(loaded.sources)


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v) for v in obj]
    return obj


@click.command("eval")
@_inputs
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Policy file layered over the default (default: the shipped default policy).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--bootstrap", "resamples", type=click.IntRange(0, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a PNG of resolve rate against cost (every strategy and the router's curve).")
@click.option("--cost-target", "cost_target", type=click.FloatRange(0, 10, min_open=True), default=0.6, show_default=True,
              help="The cascade check's cost limit, as a fraction of all-strong's cost (the plot's dashed line).")
def eval_command(tasks_path: Path | None, outcomes_path: Path | None, ledger_path: str | None, fast_model: str | None,
                 strong_model: str | None, mode: str, recall: float, fpr: float, price: str | None, as_json: bool,
                 list_models: bool, policy_path: Path | None, seed: int, resamples: int, plot_path: Path | None,
                 cost_target: float) -> None:
    """Measure a policy on recorded outcomes: strategies, APGR/CPT, per repository and per signal."""
    require_eval_extra("eval")
    from route_agent.eval.evaluate import EvalSettings, evaluate
    from route_agent.eval.report import plot_eval, render_eval

    dataset = _dataset(tasks_path, outcomes_path, ledger_path, fast_model, strong_model, price, mode, list_models, as_json)
    loaded = _load_policy(policy_path)
    settings = EvalSettings(mode=mode, recall=recall, fpr=fpr, resamples=resamples, seed=seed, cost_target=cost_target)  # type: ignore[arg-type]
    with _input_errors():
        result = evaluate(dataset, loaded.policy, settings, _sources(loaded), str(tasks_path))
    _finish(result, as_json, plot_path, plot_eval, render_eval)
    if plot_path is not None and not as_json:
        click.echo(f"plot: {plot_path}")


def _finish(result: dict[str, Any], as_json: bool, plot_path: Path | None, plot: Callable[[dict[str, Any], Path], object],
            render: Callable[[dict[str, Any]], Iterable[str]]) -> None:
    """Write the plot when asked (its path goes into the result), then print the result: JSON or lines."""
    if plot_path is not None:
        try:
            plot(result, plot_path)
        except OSError as exc:
            fail(f"{plot_path}: cannot write the plot: {exc.strerror}")
        result["plot"] = str(plot_path)
    _print(result, as_json, render)


def _print(result: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], Iterable[str]]) -> None:
    """The result as one JSON object, or as the command's lines."""
    if as_json:
        click.echo(json.dumps(_round(result), indent=2))
        return
    for line in render(result):
        click.echo(line)


def _write_policy(out_path: Path, write: Callable[[], T]) -> T:
    """Write a policy file (`write`, whatever goes with the file), then load it back: what the
    command writes must validate as the user will use it."""
    try:
        written = write()
    except OSError as exc:
        fail(f"{out_path}: cannot write: {exc.strerror}")
    try:
        PolicyCache().load(out_path)
    except PolicyError as exc:  # pragma: no cover - the writers produce valid policies
        fail(f"{out_path}: the written policy does not validate: {exc}")
    return written


def _holdout(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    return [r.strip() for r in value.split(",") if r.strip()]


@click.command("calibrate")
@_inputs
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The current policy (layered over the default) to start from and compare with.")
@click.option("--target", "target_text", required=True,
              help="strong-share=S (initial strong share at most S) or quality=Q (fraction of all-strong's resolve rate).")
@click.option("--strategy", type=click.Choice(["cascade", "router"]), default="cascade", show_default=True,
              help="Optimise the cascade (with the verifier settings) or the initial lane alone.")
@click.option("--holdout-repos", "holdout_text", default=None,
              help="Comma-separated repositories to hold out (default: the one with the most tasks; `none`: report in-sample).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the recommended policy file here.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the effective thresholds and weights.")
def calibrate_command(tasks_path: Path | None, outcomes_path: Path | None, ledger_path: str | None, fast_model: str | None,
                      strong_model: str | None, mode: str, recall: float, fpr: float, price: str | None, as_json: bool,
                      list_models: bool, policy_path: Path | None, target_text: str, strategy: str, holdout_text: str | None,
                      out_path: Path | None, show_diff: bool) -> None:
    """Recommend thresholds and weights for a target, tuned on some repositories, reported on held-out ones."""
    require_eval_extra("policy calibrate")
    from route_agent.eval.calibrate import calibrate, effective_diff, parse_target, policy_layer, with_changes
    from route_agent.eval.classify import classify_tasks, mode_label
    from route_agent.policy.loader import read_layer

    with _input_errors():
        target = parse_target(target_text)
    dataset = _dataset(tasks_path, outcomes_path, ledger_path, fast_model, strong_model, price, mode, list_models, as_json)
    loaded = _load_policy(policy_path)
    with _input_errors():
        decisions = classify_tasks(dataset.tasks, loaded.policy, mode, str(tasks_path))  # type: ignore[arg-type]
        result = calibrate(dataset, loaded.policy, [d.signals for d in decisions], target, strategy,  # type: ignore[arg-type]
                           recall, fpr, _holdout(holdout_text))
    result["signals_label"] = mode_label(mode)  # type: ignore[arg-type]
    result["leaky"] = mode == "gold"
    recommended = with_changes(loaded.policy, result["recommended"])
    diff_text = effective_diff(loaded.policy, recommended, policy_path.name if policy_path else "default", str(out_path or "recommended"))
    if out_path is not None:
        base = read_layer(policy_path).data if policy_path is not None else None
        hold = result["holdout"]["recommended"]
        header = [
            f"Calibrated by `route-agent policy calibrate --target {result['target']} --strategy {result['strategy']}`",
            f"signals: {result['signals_label']}; verifier recall {recall:g}, false-positive rate {fpr:g}",
            f"models: fast={dataset.fast_model} strong={dataset.strong_model}; tasks: {tasks_path or ledger_path}",
            f"tuned on {result['tuning_tasks']} task(s) from {len(result['tuning_repos'])} repositories; held out: "
            + (", ".join(result["holdout_repos"]) or "none (in-sample)"),
        ]
        if hold:
            header.append(f"held-out {result['strategy']}: resolve {hold['resolve_rate'] * 100:.1f}% "
                          f"({hold['resolve_vs_all_strong'] * 100:.1f}% of all-strong) "
                          f"at {hold['cost_vs_all_strong'] * 100:.1f}% of all-strong's cost")
        header.append("Layered over the built-in default policy (route-agent policy check FILE).")
        text = policy_layer(result, base, header)
        _write_policy(out_path, lambda: out_path.write_text(text, encoding="utf-8"))
        result["out"] = str(out_path)
    if show_diff:
        result["diff"] = diff_text
    _print(result, as_json, _render_calibration)
    if show_diff and not as_json:
        click.echo(diff_text, nl=False)


def _render_calibration(result: dict[str, Any]) -> list[str]:
    lines = [f"calibrate: target {result['target']} for the {result['strategy']}, signals: {result['signals_label']}"]
    if result["leaky"]:
        lines.append("WARNING: gold signals come from the reference patch: a leaky upper bound, not a usable policy")
    held = ", ".join(result["holdout_repos"]) or "none: the numbers below are in-sample"
    lines.append(f"tuned on {result['tuning_tasks']} task(s) ({', '.join(result['tuning_repos'])}); "
                 f"held out: {held} ({result['holdout_tasks']} task(s))")
    lines.append(f"searched {result['candidates_searched']} candidates (thresholds x weights {result['weight_grid']})")
    if not result["feasible_on_tuning"]:
        lines.append("the target is NOT reachable on the tuning repositories; the closest candidate is shown")
    lines.append(f"verdict: {result['verdict']}")
    if result["dominated_candidates"]:
        lines.append(f"{result['dominated_candidates']} candidate(s) cost at least as much as all-strong for no better resolve rate; "
                     "none of them is recommended")
    rec = result["recommended"]
    lines.append("recommended: " + ", ".join(f"{k}={v}" for k, v in rec.items()))
    lines.append("changed: " + (", ".join(f"{k} {c['from']}->{c['to']}" for k, c in result["changed"].items()) or "nothing"))
    header = ["set", "policy", "tasks", "resolve", "vs all-strong", "cost vs all-strong", "initial strong share"]
    rows: list[list[str]] = []
    for part in ("tuning", "holdout", "all"):
        for which in ("current", "recommended"):
            r = result[part][which]
            if r is None:
                continue
            rows.append([part, which, str(int(r["tasks"])), f"{r['resolve_rate'] * 100:.1f}%", f"{r['resolve_vs_all_strong'] * 100:.1f}%",
                         f"{r['cost_vs_all_strong'] * 100:.1f}%", f"{r['initial_strong_share'] * 100:.1f}%"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for cells in [header, ["-" * w for w in widths], *rows]:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
    if result.get("out"):
        lines.append(f"wrote {result['out']}")
    return lines


@click.command("diff")
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False))
@_inputs
def diff_command(old: Path, new: Path, tasks_path: Path | None, outcomes_path: Path | None, ledger_path: str | None,
                 fast_model: str | None, strong_model: str | None, mode: str, recall: float, fpr: float, price: str | None,
                 as_json: bool, list_models: bool) -> None:
    """Which tasks change lane between two policies, and the change in resolve rate and cost."""
    require_eval_extra("policy diff")
    from route_agent.eval.policy_diff import policy_diff, render_diff

    dataset = _dataset(tasks_path, outcomes_path, ledger_path, fast_model, strong_model, price, mode, list_models, as_json)
    old_policy, new_policy = _load_policy(old), _load_policy(new)
    with _input_errors():
        result = policy_diff(dataset, old_policy.policy, new_policy.policy, mode, recall, fpr, str(tasks_path))  # type: ignore[arg-type]
    _print(result, as_json, lambda r: render_diff(r, str(old), str(new)))


def register(cli: click.Group, policy_group: click.Group) -> None:
    cli.add_command(eval_command)
    policy_group.add_command(calibrate_command)
    policy_group.add_command(diff_command)
    policy_group.add_command(learn_command)


@click.command("learn")
@_inputs
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The policy to start from (layered over the default); its floor and thresholds still come first.")
@click.option("--target", "target_text", default="quality=1.0", show_default=True,
              help="quality=Q (the cheapest plan rule with resolve rate >= Q x all-strong's on the tuning predictions) "
                   "or cost-weight=W (resolve probability given up per strong attempt saved).")
@click.option("--holdout-repos", "holdout_text", default=None,
              help="Comma-separated repositories the shipped predictor never sees, reported apart "
                   "(default: the one with the most tasks; `none`: no hold-out, cross-validation only).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the learned policy here and its predictor next to it (OUT with .predictor.json).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--bootstrap", "resamples", type=click.IntRange(0, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the APGR interval.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write a PNG of the cross-validated frontier: resolve rate against cost for every plan and cost weight.")
def learn_command(tasks_path: Path | None, outcomes_path: Path | None, ledger_path: str | None, fast_model: str | None,
                  strong_model: str | None, mode: str, recall: float, fpr: float, price: str | None, as_json: bool,
                  list_models: bool, policy_path: Path | None, target_text: str, holdout_text: str | None,
                  out_path: Path | None, seed: int, resamples: int, plot_path: Path | None) -> None:
    """Learn which plan each task should get (cascade, strong only, fast only, stop after a failed fast
    attempt) from recorded outcomes; report leave-one-repository-out and held-out figures."""
    require_eval_extra("policy learn")
    from route_agent.eval.classify import classify_tasks
    from route_agent.eval.learn import MIN_LEDGER_TASKS, learn, parse_learn_target, write_learned_policy

    if mode == "gold":
        fail("policy learn uses pre-task signals only (a router cannot see the reference patch); drop --signals gold")
    with _input_errors():
        target = parse_learn_target(target_text)
    dataset = _dataset(tasks_path, outcomes_path, ledger_path, fast_model, strong_model, price, mode, list_models, as_json)
    if ledger_path is not None and len(dataset.tasks) < MIN_LEDGER_TASKS:
        fail(f"{ledger_path}: {len(dataset.tasks)} task(s) have outcomes in both lanes; learning needs at least {MIN_LEDGER_TASKS}: "
              f"record {MIN_LEDGER_TASKS - len(dataset.tasks)} more (or learn from --tasks/--outcomes)")
    loaded = _load_policy(policy_path)
    base = loaded.policy
    if base.routing.learned is not None:
        base = base.model_copy(update={"routing": base.routing.model_copy(update={"learned": None})})
    with _input_errors():
        decisions = classify_tasks(dataset.tasks, base, "pre-task", str(tasks_path))
        result, predictor = learn(dataset, decisions, target, recall, fpr, _holdout(holdout_text), resamples, seed)
    if out_path is not None:
        written = _write_policy(out_path, lambda: write_learned_policy(out_path, policy_path, predictor, result,
                                                                       str(tasks_path or ledger_path)))
        result["out"] = str(out_path)
        result["predictor_file"] = str(written)
    from route_agent.eval.report import plot_learn, render_learn

    _finish(result, as_json, plot_path, plot_learn, render_learn)
