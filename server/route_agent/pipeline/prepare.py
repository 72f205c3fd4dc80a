"""One way to prepare a routed run, for every front end (the CLI's `route`, the editor's routeFix and
its risk snapshot): repository, policy, change set, scoring, then the checks that guard running.

    plan = plan_workspace(settings, reuse_router=None)  # git, policy, change set, router, decision;
                                                        # raises PolicyError, WorkspaceError, LaneRefused
    plan = plan_run(settings)                           # the same, failures as a RunRefused
    prepared = prepare_run(settings)                    # a plan that may run: a RunRequest, or RunRefused

A refusal is a typed value (`Refusal`: kind, message and what the front end needs to show it); the
CLI prints it and exits 2, the language server answers the request with an error carrying the
message. The checks, in this order: the workspace is trusted (an editor's restricted mode); the
repository opens; the policy loads and layers; a `--test-report` reads; the lane asked for is
allowed; the lane's API key is set; a repository policy does not choose where keys go (endpoints) and
its verification commands are approved (workspace/approvals.py); its checks would not run unsandboxed
where the user has not accepted that (`route-agent policy approve --unsandboxed`); the ledger opens.

The one place the front ends differ, on purpose: a missing API key is a `missing_key` refusal for
both, and the CLI shows it as a dry run (exit 0, the plan and a note naming the variable) because a
terminal user who has no key yet asks what would happen; the editor shows the refusal, since its
risk view already is the plan. A CLI run with `--dry-run` stops at `plan_run`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from route_agent.lanes.tls import load_in_background
from route_agent.ledger import LedgerError, open_ledger
from route_agent.pipeline.economics import read_economics
from route_agent.pipeline.run import RunRequest, unsandboxed_refusal
from route_agent.policy import LoadedPolicy, PolicyCache, PolicyError, PolicyIssue
from route_agent.policy.approval import RepoPolicyStatus, repo_endpoint_overrides, unsandboxed_opt_in_trusted
from route_agent.policy.keys import missing_key
from route_agent.policy.models import ModelSpec, Policy
from route_agent.routing import LaneRefused, Router
from route_agent.routing.decide import Decision
from route_agent.signals import Evidence, TestFailures
from route_agent.signals.changeset import ChangeSet
from route_agent.verify.findings import Finding
from route_agent.verify.junit import ReportError, read_junit
from route_agent.workspace.approvals import repo_policy_needing_approval
from route_agent.workspace.git import Repo, StatusListing, WorkspaceError, collect_changes, open_repo
from route_agent.workspace.state import latest_test_failures, user_policy_path

RequestedLane = Literal["auto", "fast", "strong"]
RefusalKind = Literal[
    "untrusted", "workspace", "policy", "test_report", "lane", "missing_key", "endpoints", "unapproved", "unsandboxed", "ledger"
]

__all__ = [
    "PreparedRun",
    "Refusal",
    "RefusalKind",
    "RunPlan",
    "RunRefused",
    "RunSettings",
    "plan_run",
    "plan_workspace",
    "prepare_run",
]


@dataclass(frozen=True)
class RunSettings:
    """Everything a front end decides about a run; the same settings give the same RunRequest."""

    root: Path
    brief: str
    lane: RequestedLane = "auto"
    explicit_policy: Path | None = None
    """`--policy` or the editor's `policyPath`: the user's own, so trusted (no approval asked)."""
    buffers: Mapping[str, str] = field(default_factory=dict)
    """An editor's unsaved documents (repository-relative path -> text), counted instead of the files."""
    environ: Mapping[str, str] | None = None
    """The environment the lanes and checks see (API keys); the process's own when None."""
    ledger_location: str | None = None
    sandbox: str | None = None
    test_report: Path | None = None
    """A JUnit XML whose failures count as test_failures (default: the latest verification)."""
    trusted: bool = True
    """False in an editor's restricted mode: nothing of the repository's may run."""
    provider_base_urls: tuple[tuple[str, str], ...] = ()
    """The user's per-provider endpoints, for models whose entry names none."""
    ask_before_escalating: bool = False
    """The editor's escalation: a run that starts fast stops after one attempt; the user decides."""
    run_id: str | None = None
    carry: Sequence[Finding] = ()
    task_id: str | None = None
    first_attempt_no: int = 1
    policy_cache: PolicyCache | None = None


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    message: str
    """One line for the user, saying what they can do about it."""
    issues: tuple[PolicyIssue, ...] = ()
    """kind "policy": every problem, with file, line and column."""
    approval: RepoPolicyStatus | None = None
    """kind "unapproved": the commands, their hash and what changed since the last approval."""
    missing: str | None = None
    """kind "missing_key": the environment variable that is not set."""
    missing_for: str | None = None
    """kind "missing_key": what needs it, as "the strong lane: MODEL" or "the verifier: MODEL"."""
    workspace: Path | None = None
    """The repository's root, when known."""


class RunRefused(Exception):
    """A run cannot start; `refusal` says why. `plan` is set when the refusal came after scoring."""

    def __init__(self, refusal: Refusal, plan: RunPlan | None = None) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.plan = plan


@dataclass(frozen=True)
class RunPlan:
    repo: Repo
    loaded: LoadedPolicy
    change_set: ChangeSet
    router: Router
    decision: Decision
    listing: StatusListing | None = None
    """The paths the change set's status named, and when (a run's first worktree reset copies them)."""

    @property
    def spec(self) -> ModelSpec:
        spec: ModelSpec = getattr(self.loaded.policy.models, self.decision.lane)
        return spec


@dataclass(frozen=True)
class PreparedRun:
    plan: RunPlan
    request: RunRequest
    """Ready for `run_task`; the caller closes `request.ledger`."""


def _environ(settings: RunSettings) -> Mapping[str, str]:
    return os.environ if settings.environ is None else settings.environ


def _test_failures(root: Path, report: Path | None) -> TestFailures:
    if report is None:
        return latest_test_failures(root)
    summary = read_junit(report)
    evidence = tuple(
        Evidence(path=f.file, line=f.line, detail=f.test_id, excerpt=f.message[:120] or None) for f in summary.failures[:20]
    )
    return TestFailures(count=len(summary.failures), source=str(report), evidence=evidence)


def plan_workspace(settings: RunSettings, reuse_router: Router | None = None, *, lane_fallback: bool = False) -> RunPlan:
    """Git, policy and scoring; synchronous (call it in a worker thread from async code).

    Raises WorkspaceError, PolicyError, ReportError or LaneRefused. `reuse_router` is kept while the
    policy is the same object (the policy cache guarantees it until a policy file changes), so its
    compiled path rules and per-path cache survive, as the editor's snapshot wants. With
    `lane_fallback`, a lane the floor refuses is scored as "auto" instead (the snapshot shows the risk).
    """
    cache = settings.policy_cache or PolicyCache()
    repo = open_repo(settings.root)
    loaded = cache.for_workspace(repo.root, settings.explicit_policy, user_policy_path())
    failures = _test_failures(repo.root, settings.test_report)
    change_set, listing = collect_changes(repo, buffers=dict(settings.buffers))
    if reuse_router is not None and reuse_router.policy is loaded.policy:
        router = reuse_router
    else:
        economics = read_economics(loaded.policy, settings.ledger_location, change_set)
        router = Router(loaded.policy, repo=str(repo.root), economics=economics)
    try:
        decision = router.classify(change_set, settings.brief, failures, requested_lane=settings.lane)
    except LaneRefused:
        if not lane_fallback:
            raise
        decision = router.classify(change_set, settings.brief, failures)
    return RunPlan(repo, loaded, change_set, router, decision, listing)


def plan_run(settings: RunSettings) -> RunPlan:
    """`plan_workspace` with its failures as a RunRefused (a dry run)."""
    try:
        return plan_workspace(settings)
    except PolicyError as exc:
        message = f"policy error: {exc.issues[0] if exc.issues else exc}"
        raise RunRefused(Refusal("policy", message, issues=tuple(exc.issues))) from None
    except WorkspaceError as exc:
        raise RunRefused(Refusal("workspace", str(exc))) from None
    except ReportError as exc:
        raise RunRefused(Refusal("test_report", str(exc))) from None
    except LaneRefused as exc:
        raise RunRefused(Refusal("lane", str(exc))) from None


def prepare_run(settings: RunSettings) -> PreparedRun:
    """A plan that may run, as a RunRequest with the ledger open; or RunRefused. Synchronous."""
    if not settings.trusted:
        raise RunRefused(Refusal("untrusted", "this workspace is not trusted: a routed run executes the repository's tests and "
                                 "checks, so route-agent runs none of them in restricted mode; trust the workspace to route fixes"))
    load_in_background()  # the lane client's TLS context, while git and the policy are read
    plan = plan_run(settings)
    refusal = _guard(settings, plan)
    if refusal is not None:
        raise RunRefused(refusal, plan)
    try:
        ledger = open_ledger(settings.ledger_location)
    except LedgerError as exc:
        raise RunRefused(Refusal("ledger", f"{exc}; nothing was run (today's spend cannot be read)"), plan) from None
    policy = plan.loaded.policy
    if settings.ask_before_escalating:
        policy = one_attempt_when_fast(policy, plan.decision.lane)
    request = RunRequest(
        repo=plan.repo, policy=with_provider_urls(policy, settings.provider_base_urls), router=plan.router, decision=plan.decision,
        brief=settings.brief, change_set=plan.change_set, ledger=ledger, environ=dict(_environ(settings)),
        run_id=settings.run_id or uuid.uuid4().hex[:12], sandbox=settings.sandbox, buffers=dict(settings.buffers),
        task_id=settings.task_id, first_attempt_no=settings.first_attempt_no, carry_findings=tuple(settings.carry),
        listing=plan.listing,
        allow_unsandboxed=unsandboxed_opt_in_trusted(plan.repo.root, plan.loaded.sources, (settings.policy_cache or PolicyCache()).layer),
    )
    return PreparedRun(plan, request)


def _guard(settings: RunSettings, plan: RunPlan) -> Refusal | None:
    """The checks between a plan and a run: the key, then (for a repository's policy) endpoints and
    approval, then whether its checks would run unsandboxed where the user has not accepted that."""
    models = _models_the_run_may_call(plan)
    refusal = _missing_key(settings, models[:1])  # the routed lane's key: without it the CLI shows a dry run
    if refusal is not None:
        return refusal
    root = plan.repo.root
    if settings.explicit_policy is None:
        refusal = repository_policy_refusal(settings, plan)
        if refusal is not None:
            return refusal
    # Named before the first model call: a run that paid for the fast lane and then could not
    # escalate or be verified would end 'fail' for want of a variable.
    refusal = _missing_key(settings, models[1:])
    if refusal is not None:
        return refusal
    unsandboxed = unsandboxed_refusal(root, plan.loaded.policy, settings.sandbox)
    if unsandboxed is not None:
        return Refusal("unsandboxed", unsandboxed, workspace=root)
    return None


def _missing_key(settings: RunSettings, models: list[tuple[str, ModelSpec]]) -> Refusal | None:
    for role, spec in models:
        unset = missing_key(spec, _environ(settings))
        if unset is not None:
            return Refusal("missing_key", f"{role} ({spec.model}) needs {unset}, which is not set", missing=unset,
                           missing_for=f"{role}: {spec.model}")
    return None


def _models_the_run_may_call(plan: RunPlan) -> list[tuple[str, ModelSpec]]:
    """The routed lane, the strong lane when the run may escalate to it, and the verifier for those lanes."""
    policy = plan.loaded.policy
    lane = plan.decision.lane
    lanes = [lane]
    stops_after_fast = plan.decision.plan_name in ("fast-only", "stop-after-fast")
    if lane == "fast" and policy.routing.max_attempts > 1 and not stops_after_fast:
        lanes.append("strong")
    out: list[tuple[str, ModelSpec]] = [(f"the {name} lane", getattr(policy.models, name)) for name in lanes]
    verifier = policy.models.verifier
    if verifier is not None and any(name in policy.verifier.lanes for name in lanes):
        out.append(("the verifier", verifier))
    return out


def repository_policy_refusal(settings: RunSettings, plan: RunPlan) -> Refusal | None:
    """A repository's own policy may not choose where keys go, and its commands need the user's approval."""
    root = plan.repo.root
    cache = settings.policy_cache or PolicyCache()
    try:
        overrides = repo_endpoint_overrides(root, cache.layer)
        status = None if overrides is not None else repo_policy_needing_approval(root, plan.loaded.policy, cache.layer)
    except PolicyError as exc:
        return Refusal("policy", f"policy error: {exc.issues[0] if exc.issues else exc}", issues=tuple(exc.issues))
    if overrides is not None:
        where = overrides[0].relative_to(root) if overrides[0].is_relative_to(root) else overrides[0]
        return Refusal("endpoints", f"the repository policy {where} sets {', '.join(overrides[1])}: a repository cannot choose where "
                       "your API keys go (only endpoints on this machine) or send a platform credential; nothing was run. Put model "
                       f"endpoints in your own policy ({user_policy_path()}) or give a policy file yourself (--policy, policyPath)")
    if status is not None and not status.approved:
        rel = status.policy_path.relative_to(root) if status.policy_path.is_relative_to(root) else status.policy_path
        changed = "changed since you approved them" if status.previous is not None else "you have not approved"
        return Refusal("unapproved", f"the repository policy {rel} declares {len(status.commands)} verification command(s) that "
                       f"{changed} (sha256 {status.sha256[:12]}…); nothing was run. Approve them with "
                       f"'route-agent policy approve --workspace {root}' or the editor's approve command", approval=status,
                       workspace=root)
    return None


def one_attempt_when_fast(policy: Policy, lane: str) -> Policy:
    """The editor's run policy: one attempt when it starts fast (the user is asked before escalating)."""
    if lane != "fast" or policy.routing.max_attempts == 1:
        return policy
    return policy.model_copy(update={"routing": policy.routing.model_copy(update={"max_attempts": 1})})


def with_provider_urls(policy: Policy, urls: tuple[tuple[str, str], ...]) -> Policy:
    """The user's per-provider endpoints for models whose entry names none (never the repository's)."""
    if not urls:
        return policy
    table = dict(urls)

    def fill(spec: ModelSpec | None) -> ModelSpec | None:
        if spec is None:
            return None
        update: dict[str, object] = {}
        if spec.base_url is None and spec.provider in table:
            update["base_url"] = table[spec.provider]
        if spec.fallback is not None:
            update["fallback"] = fill(spec.fallback)
        return spec.model_copy(update=update) if update else spec

    models = policy.models
    return policy.model_copy(update={"models": models.model_copy(update={
        "fast": fill(models.fast), "strong": fill(models.strong), "verifier": fill(models.verifier)})})
