"""Human tables and the PNG plot for `route-agent eval` results (the JSON dictionary)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.{digits}f}%"


def _ci_pct(ci: list[float] | None) -> str:
    return "" if not ci else f"[{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci_num(ci: list[float] | None, digits: int = 3) -> str:
    return "" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def cost_line(result: dict[str, Any]) -> str:
    cost = result["cost"]
    if cost["source"] == "outcomes":
        return "cost: real per-task cost_usd from the outcomes file"
    price = cost["price"]
    return f"cost: per-lane price per task, fast={price['fast']:g} strong={price['strong']:g} (the outcomes have no cost_usd)"


def render_eval(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    label = result["signals_label"]
    lines.append(f"route-agent eval: {result['tasks']} tasks in {result['repos']} repositories; "
                 f"fast={result['fast_model']} strong={result['strong_model']}")
    th = result["thresholds"]
    lines.append(f"signals: {label}; policy: {' <- '.join(result['policy_sources']) or 'default'} "
                 f"(fast_max_score {th['fast_max_score']}, strong_min_score {th['strong_min_score']})")
    if result["leaky"]:
        lines.append("WARNING: gold signals come from the reference patch, known only after solving: a leaky upper bound, not a result")
    lines.append(cost_line(result))
    ver = result["verifier"]
    lines.append(f"cascade verifier: catch rate {ver['recall']:g} (P(fails it | fast attempt wrong)), false-alarm rate "
                 f"{ver['false_positive_rate']:g} (P(fails it | fast attempt right)) ({ver['method']})")
    boot = result["bootstrap"]
    lines.append(f"bootstrap: {boot['resamples']} resamples of tasks, seed {boot['seed']}; [brackets] are 95% intervals")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    strong_cost = result["strategies"]["all-strong"]["total_cost"]
    rows = []
    for name, row in result["strategies"].items():
        ci = row.get("ci95", {})
        rows.append([name, _pct(row["resolve_rate"]), _ci_pct(ci.get("resolve_rate")), f"{row['total_cost']:.2f}",
                     _pct(row["total_cost"] / strong_cost if strong_cost else None), _pct(row["strong_share"])])
    lines += _table(["strategy", "resolve", "95% CI", "cost", "cost/all-strong", "strong share"], rows)
    lines.append("")
    rm = result["routing_metrics"]
    lines.append(f"router score ordering ({label}), RouteLLM metrics:")
    lines.append(f"  APGR {_num(rm['apgr'])} {_ci_num(rm.get('apgr_ci95'))}  (random routing: 0.500; "
                 f"share of resamples with APGR <= 0.5: {_num(rm.get('p_apgr_at_most_random'), 2)})")
    if rm.get("bootstrap_resamples"):
        lines.append(f"  undefined resamples: {rm['bootstrap_undefined']} of {rm['bootstrap_resamples']} "
                     "(the strong model did not beat the fast one there; the intervals use the others)")
    lines.append(f"  CPT(50%) {_pct(rm['cpt50'])} {_ci_pct(rm.get('cpt50_ci95'))}  "
                 f"CPT(80%) {_pct(rm['cpt80'])} {_ci_pct(rm.get('cpt80_ci95'))}  (random: 50.0% and 80.0%)")
    if rm.get("router_minus_random_resolve_ci95"):
        lines.append(f"  router - random at the same strong share, resolve rate: {_ci_pct(rm['router_minus_random_resolve_ci95'])} points;"
                     f" cascade - random-first cascade: {_ci_pct(rm['cascade_minus_random_cascade_resolve_ci95'])}")
    check = result["cascade_check"]
    verdict = "MET" if check["meets"] else "NOT MET"
    lines.append(f"cascade check ({check['target']}): {verdict}: cascade reaches "
                 f"{_pct(check['cascade']['resolve_vs_all_strong'])} of all-strong's resolve rate "
                 f"at {_pct(check['cascade']['cost_vs_all_strong'])} of its cost"
                 f" (bound with an oracle first lane: {_pct(check['cascade-oracle-first']['cost_vs_all_strong'])} of the cost)")
    lines.append("")
    lines.append("per repository (router = the policy's initial lane):")
    rows = []
    for repo in result["per_repo"]:
        st = repo["strategies"]
        rows.append([repo["repo"], str(repo["tasks"]), _pct(st["all-fast"]["resolve_rate"], 0), _pct(st["all-strong"]["resolve_rate"], 0),
                     _pct(st["oracle"]["resolve_rate"], 0), _pct(st["router"]["resolve_rate"], 0), _pct(repo["router_strong_share"], 0),
                     _pct(st["cascade"]["resolve_rate"], 0), _num(repo["apgr"], 2), _ci_num(repo["apgr_ci95"], 2)])
    lines += _table(["repo", "tasks", "fast", "strong", "oracle", "router", "strong share", "cascade", "APGR", "95% CI"], rows)
    lines.append("")
    lines.append("signals (strong helps = only the strong model resolves; fast resolves = the fast model suffices):")
    rows = []
    for sig in result["signals"]:
        on, off = sig["fires"], sig["does_not_fire"]
        rows.append([sig["signal"], str(on["tasks"]), _pct(on["strong_helps_rate"], 0), _pct(on["fast_suffices_rate"], 0),
                     _pct(off["strong_helps_rate"], 0), _num(sig["strong_helps_lift"], 2)])
    lines += _table(["signal", "fires", "strong helps", "fast resolves", "strong helps (not fired)", "lift"], rows)
    return lines


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, drawn without a display (matplotlib is imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=110)


def _save(fig: Any, ax: Any, path: Path, legend_loc: str) -> None:
    """Grid, legend, layout, then the PNG; the figure is closed (matplotlib keeps open ones)."""
    import matplotlib.pyplot as plt

    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc=legend_loc)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def plot_eval(result: dict[str, Any], path: Path) -> None:
    label = result["signals_label"]
    strategies = result["strategies"]
    fig, ax = _figure(8.5, 6)
    rm = result["routing_metrics"]
    rc = rm["router_curve"]
    ax.plot([p["total_cost"] for p in rc], [p["resolve_rate"] * 100 for p in rc], "-", color="tab:blue", lw=1.5,
            label=f"router threshold sweep ({label})")
    cc = rm["cascade_curve"]
    ax.plot([p["total_cost"] for p in cc], [p["resolve_rate"] * 100 for p in cc], "-", color="tab:purple", lw=1.2,
            label="cascade threshold sweep")
    fast, strong = strategies["all-fast"], strategies["all-strong"]
    ax.plot([fast["total_cost"], strong["total_cost"]], [fast["resolve_rate"] * 100, strong["resolve_rate"] * 100], ":", color="grey",
            label="random routing")
    markers = {"all-fast": ("o", "tab:green"), "all-strong": ("o", "tab:red"), "random": ("x", "grey"), "oracle": ("*", "gold"),
               "router": ("s", "tab:blue"), "cascade": ("D", "tab:purple"), "random-cascade": ("x", "tab:purple"),
               "cascade-all-fast-first": ("v", "tab:pink"), "cascade-oracle-first": ("P", "tab:orange")}
    for name, row in strategies.items():
        marker, color = markers.get(name, ("o", "black"))
        edge = None if marker == "x" else "black"
        ax.scatter([row["total_cost"]], [row["resolve_rate"] * 100], marker=marker, color=color, s=70, zorder=3, label=name,
                   edgecolors=edge, linewidths=0.5)
    fraction = result["cascade_check"].get("cost_target", 0.6)
    limit = fraction * strong["total_cost"]
    ax.axvline(limit, color="tab:red", ls="--", lw=0.8)
    ax.axhline(strong["resolve_rate"] * 100, color="tab:red", ls="--", lw=0.8)
    ax.text(limit, ax.get_ylim()[0], f" {fraction:.0%} of all-strong's cost", color="tab:red", fontsize=8, va="bottom")
    unit = "USD" if result["cost"]["source"] == "outcomes" else "price units"
    ax.set_xlabel(f"total cost ({unit}, {result['tasks']} tasks)")
    ax.set_ylabel("resolve rate (%)")
    apgr = rm["apgr"]
    ci = rm.get("apgr_ci95")
    ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    title = f"{result['fast_model']} vs {result['strong_model']}; signals: {label}"
    ax.set_title(f"{title}\nrouter APGR {apgr if apgr is None else round(apgr, 3)}{ci_text} (random 0.5); "
                 f"verifier recall {result['verifier']['recall']:g}, FPR {result['verifier']['false_positive_rate']:g}", fontsize=9)
    _save(fig, ax, path, "center left")


PLAN_LABELS = {
    "cascade": "cascade (fast, then strong)",
    "strong-only": "strong only (all-strong)",
    "fast-only": "fast only / stop after failed fast",
    "all-fast (no verification)": "all-fast, no verification",
    "learned": "learned plan choice",
    "oracle plans (bound)": "oracle plan per task (bound: knows the outcomes)",
}


def render_learn(result: dict[str, Any]) -> list[str]:
    ver = result["verifier"]
    lines = [
        f"policy learn: {result['tasks']} tasks in {result['repos']} repositories; fast={result['fast_model']} "
        f"strong={result['strong_model']}; target {result['target']}",
        f"verification: catch rate {ver['catch_rate']:g}, false-alarm rate {ver['false_alarm_rate']:g}; "
        f"a fast attempt costs {result['fast_cost_vs_strong'] * 100:.1f}% of a strong one",
        f"predictor: {result['features']} features, 3 regularised logistic models; rule chosen by leave-one-repository-out "
        f"on the training repositories: {result['rule']}"
        + ("" if result["target_reached_on_tuning"] else " (the target was NOT reachable on the tuning predictions: closest shown)"),
    ]
    for note in result["notes"]:
        lines.append(f"note: {note}")
    blocks = [("leave-one-repository-out (every task predicted by a model that never saw its repository)", result["cross_validation"])]
    if result["holdout"]:
        blocks.append((f"held out: {', '.join(result['holdout_repos'])} ({result['holdout_tasks']} task(s), never seen in training)",
                       result["holdout"]))
    for title, block in blocks:
        lines += ["", f"{title}:"]
        rows = [[PLAN_LABELS.get(name, name), _pct(row["resolve_rate"]), _pct(row["resolve_vs_all_strong"]),
                 _pct(row["cost_vs_all_strong"])] for name, row in block["plans"].items()]
        lines += _table(["plan", "resolve", "vs all-strong", "cost vs all-strong"], rows)
        mix = ", ".join(f"{name} {share * 100:.0f}%" for name, share in block["plan_mix"].items() if share)
        lines.append(f"learned plan mix: {mix}")
        undefined = block.get("apgr_undefined_resamples")
        lines.append(f"predictor APGR (ordered by P(strong) - P(fast)): {_num(block['apgr'])} {_ci_num(block['apgr_ci95'])} "
                     f"(random 0.500; undefined resamples: {undefined if undefined is not None else 'n/a'} "
                     f"of {block['bootstrap_resamples']})")
        auc = block.get("auc")
        if auc:
            lines.append("predictor AUC (does it rank outcomes?): " + ", ".join(f"{k} {_num(v)}" for k, v in auc.items()))
        meets = block["meets"]
        lines.append("goals: " + "; ".join([
            f"all-strong's resolve rate at <= 50% of its cost: {'MET' if meets['quality_at_half_cost'] else 'NOT MET'}",
            f"APGR interval above 0.5: {'MET' if meets['apgr_above_random'] else 'NOT MET'}",
            f"cost no more than all-strong: {'MET' if meets['no_more_than_all_strong'] else 'NOT MET'}",
        ]))
    if result.get("out"):
        lines += ["", f"wrote {result['out']} and {result['predictor_file']}"]
    return lines


def plot_learn(result: dict[str, Any], path: Path) -> None:
    cv = result["cross_validation"]
    fig, ax = _figure(8, 5.5)
    front = cv["frontier"]
    ax.plot([p["cost_vs_all_strong"] * 100 for p in front], [p["resolve_vs_all_strong"] * 100 for p in front], "-o", ms=3,
            color="tab:blue", label="learned plan choice, every cost weight (LORO)")
    markers = {"cascade": ("D", "tab:purple"), "strong-only": ("o", "tab:red"), "fast-only": ("o", "tab:green"),
               "all-fast (no verification)": ("x", "tab:green"), "learned": ("*", "gold"), "oracle plans (bound)": ("P", "tab:orange")}
    for name, row in cv["plans"].items():
        marker, color = markers.get(name, ("o", "black"))
        ax.scatter([row["cost_vs_all_strong"] * 100], [row["resolve_vs_all_strong"] * 100], marker=marker, color=color, s=90,
                   zorder=3, label=PLAN_LABELS.get(name, name), edgecolors=None if marker == "x" else "black", linewidths=0.5)
    ax.axvline(50, color="tab:red", ls="--", lw=0.8)
    ax.axhline(100, color="tab:red", ls="--", lw=0.8)
    ax.text(50, ax.get_ylim()[0], " goal: 100% at <= 50% of the cost", color="tab:red", fontsize=8, va="bottom")
    ax.set_xlabel("cost (% of all-strong's)")
    ax.set_ylabel("resolve rate (% of all-strong's)")
    ci = cv.get("apgr_ci95")
    ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    ax.set_title(f"{result['fast_model']} vs {result['strong_model']}, fast = {result['fast_cost_vs_strong'] * 100:.0f}% of strong's cost\n"
                 f"leave-one-repository-out; predictor APGR {cv['apgr']:.3f}{ci_text}; catch {result['verifier']['catch_rate']:g}, "
                 f"false alarm {result['verifier']['false_alarm_rate']:g}", fontsize=9)
    _save(fig, ax, path, "lower right")
