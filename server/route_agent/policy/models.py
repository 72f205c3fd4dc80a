"""Pydantic models of the policy file: the contract users write and tools validate.

Every model forbids unknown keys so that a typo (`fast_max_scor`) is an error at a line, not a
silently ignored setting. `policies/schema.json` is generated from these models.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from route_agent.policy.floor import FloorCondition

Provider = Literal["openrouter", "openai", "ollama", "openai-compatible"]
LaneName = Literal["fast", "strong"]
Tier = Literal["fast", "strong"]

# Conditions the routing section may name: the built-in floor first (floor.py), written once each.
AlwaysStrongCondition = Literal[
    FloorCondition,
    "secret_in_content",
    "lookalike_path",
    "dependency_change",
    "file_mode_change",
    "deletions",
    "binary_change",
    "test_failures",
    "new_code",
    "sensitive_path",
    "brief_manipulation",
]
ALWAYS_STRONG_CONDITIONS: tuple[str, ...] = get_args(AlwaysStrongCondition)
EscalateCondition = Literal[
    "failed_tests",
    "failed_checks",
    "patch_rejected",
    "low_confidence_summary",
    "snapshot_only",
    "tamper",
    "scope_creep",
    "unverified",
]


def _default_always_strong() -> list[AlwaysStrongCondition]:
    return ["schema_change", "auth_code", "production_incident"]


def _default_escalate_on() -> list[EscalateCondition]:
    return ["failed_tests", "patch_rejected", "low_confidence_summary"]


def _both_lanes() -> list[LaneName]:
    return ["fast", "strong"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(StrictModel):
    """US dollars per million tokens."""

    input: Annotated[float, Field(ge=0)] = 0.0
    output: Annotated[float, Field(ge=0)] = 0.0


class AgentLimits(StrictModel):
    """Limits of the built-in agent loop (`executor: builtin`). The top-level `agent:` section sets
    them for both lanes; a lane's `agent:` overrides single keys."""

    max_steps: Annotated[int, Field(ge=1, le=1000)] = 40
    command_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    output_limit_bytes: Annotated[int, Field(ge=256, le=64 * 1024)] = 16 * 1024
    wall_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0
    allow_unsandboxed: bool = Field(
        default=False,
        description="Run the agent's commands without bubblewrap when it cannot run here. Honoured only in your own "
        "policy (or --policy), never in a repository's.",
    )


class AgentLimitsOverride(StrictModel):
    """A lane's overrides of the top-level `agent:` limits (unset keys keep the top-level value)."""

    max_steps: Annotated[int, Field(ge=1, le=1000)] | None = None
    command_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    output_limit_bytes: Annotated[int, Field(ge=256, le=64 * 1024)] | None = None
    wall_timeout_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    allow_unsandboxed: bool | None = None


class ExternalAgent(StrictModel):
    """An agent the user already runs (aider, mini-swe-agent, ...), started in the attempt's worktree.

    Placeholders in `command`, `env` and `files`: {model}, {base_url}, {brief}, {brief_file}, {workdir},
    {scratch}, {max_context_tokens}, {max_output_tokens}."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The lane's API key is passed to the agent under this environment variable name (and no other key).",
    )
    timeout_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict, description="Extra environment variables for the agent (placeholders allowed); no keys here."
    )
    files: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,200}$")], str] = Field(
        default_factory=dict,
        description="Files written into the agent's private scratch directory before it starts (placeholders allowed), "
        "e.g. a model-metadata file; refer to them as {scratch}/NAME.",
    )


Executor = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class ModelSpec(StrictModel):
    provider: Provider
    model: Annotated[str, Field(min_length=1, max_length=200)]
    max_context_tokens: Annotated[int, Field(ge=1024, le=2_000_000)] = 32_000
    max_output_tokens: Annotated[int, Field(ge=64, le=200_000)] = 4096
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint root, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable that holds the key; defaults by provider.",
    )
    price_per_mtok: Price | None = None
    tier: Tier | None = Field(default=None, description="Capability tier; defaults to the lane's name.")
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    idle_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    fallback: ModelSpec | None = Field(
        default=None, description="Used when this model fails; only of the same or a stronger tier."
    )
    executor: Executor = Field(
        default="builtin",
        description="What drives this lane: builtin (the agent loop in the sandbox), oneshot (one prompt, one diff), "
        "or the name of an agent under `agents:`.",
    )
    agent: AgentLimitsOverride | None = Field(default=None, description="This lane's overrides of the top-level `agent:` limits.")


class Models(StrictModel):
    fast: ModelSpec
    strong: ModelSpec
    verifier: ModelSpec | None = None

    @model_validator(mode="after")
    def _fallback_tiers(self) -> Models:
        order = {"fast": 0, "strong": 1}
        for lane in ("fast", "strong"):
            spec: ModelSpec = getattr(self, lane)
            tier = order[spec.tier or lane]
            fb = spec.fallback
            while fb is not None:
                if order[fb.tier or lane] < tier:
                    raise ValueError(
                        f"models.{lane}.fallback is of a weaker tier than the lane; a fallback "
                        "must be of the same or a stronger tier"
                    )
                fb = fb.fallback
        return self


PlanName = Literal["cascade", "strong-only", "fast-only", "stop-after-fast"]


def _all_plans() -> list[PlanName]:
    return ["cascade", "strong-only", "fast-only", "stop-after-fast"]


class LearnedRouting(StrictModel):
    """A learned plan choice (written by `route-agent policy learn`) for tasks the risk rules send to
    the fast lane; the always-strong floor and the strong threshold still come first."""

    predictor: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="The predictor JSON file; a relative path is relative to the policy file that names it."
    )
    cost_weight: Annotated[float, Field(ge=0, le=100)] = Field(
        description="Resolve probability given up per strong attempt saved: the plan maximises expected resolve - cost_weight x cost."
    )
    catch_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.8, description="P(verification fails an attempt | the fast attempt did not resolve the task)."
    )
    false_alarm_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1, description="P(verification fails an attempt | the fast attempt resolved the task)."
    )
    plans: Annotated[list[PlanName], Field(min_length=1)] = Field(default_factory=_all_plans)
    fixed_plan: PlanName | None = Field(
        default=None,
        description="Every task the rules leave open gets this plan: what `policy learn` writes when the per-task "
        "predictions did no better than one plan for all on repositories they had not seen. Predictions are still shown.",
    )


class Routing(StrictModel):
    fast_max_score: NonNegativeInt = 6
    strong_min_score: NonNegativeInt = 7
    between: LaneName = Field(
        default="strong",
        description="Lane for a score above fast_max_score and below strong_min_score.",
    )
    always_strong_if: list[AlwaysStrongCondition] = Field(default_factory=_default_always_strong)
    escalate_on: list[EscalateCondition] = Field(default_factory=_default_escalate_on)
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.65
    max_attempts: Annotated[int, Field(ge=1, le=5)] = 2
    skip_fast_when_it_cannot_pay: bool = Field(
        default=True,
        description="Send work to the strong lane when fast-first costs no less than strong alone "
        "(the models' prices and the ledger's typical tokens and escalation rate per lane).",
    )
    plan: Literal["auto", "strong-only", "fast-only"] = Field(
        default="auto",
        description="auto: the cascade (or routing.learned's choice); strong-only: every task to the strong lane; "
        "fast-only: tasks the rules send fast are never escalated (a failed attempt stops with its findings).",
    )
    learned: LearnedRouting | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> Routing:
        if self.fast_max_score >= self.strong_min_score:
            raise ValueError(
                f"routing.fast_max_score ({self.fast_max_score}) must be below "
                f"routing.strong_min_score ({self.strong_min_score})"
            )
        return self


class PerItem(StrictModel):
    per: Annotated[int, Field(ge=0, le=100)]
    max: Annotated[int, Field(ge=0, le=1000)]


class Weights(StrictModel):
    """Points per signal. Defaults reproduce the design notes: files (max 8) + 5 schema + 5 auth
    + 2 per failing test (max 6) + 3 new code; the other signals are ours."""

    files: PerItem = PerItem(per=1, max=8)
    schema_change: Annotated[int, Field(ge=0, le=100)] = 5
    auth_code: Annotated[int, Field(ge=0, le=100)] = 5
    test_failures: PerItem = PerItem(per=2, max=6)
    new_code: Annotated[int, Field(ge=0, le=100)] = 3
    secrets_handling: Annotated[int, Field(ge=0, le=100)] = 5
    ci_config: Annotated[int, Field(ge=0, le=100)] = 5
    deploy_config: Annotated[int, Field(ge=0, le=100)] = 5
    production_incident: Annotated[int, Field(ge=0, le=100)] = 5
    secret_in_content: Annotated[int, Field(ge=0, le=100)] = 5
    lookalike_path: Annotated[int, Field(ge=0, le=100)] = 5
    dependency_change: Annotated[int, Field(ge=0, le=100)] = 2
    file_mode_change: Annotated[int, Field(ge=0, le=100)] = 3
    deletions: Annotated[int, Field(ge=0, le=100)] = 1
    binary_change: Annotated[int, Field(ge=0, le=100)] = 1
    sensitive_path: Annotated[int, Field(ge=0, le=100)] = 3
    brief_manipulation: Annotated[int, Field(ge=0, le=100)] = 2
    hidden_characters: Annotated[int, Field(ge=0, le=100)] = 1
    truncated_input: Annotated[int, Field(ge=0, le=100)] = 1


class Paths(StrictModel):
    """Gitignore-style globs per signal. The built-in floor's globs always apply as well."""

    schema_change: list[str] = Field(default_factory=list)
    auth_code: list[str] = Field(default_factory=list)
    secrets_handling: list[str] = Field(default_factory=list)
    ci_config: list[str] = Field(default_factory=list)
    deploy_config: list[str] = Field(default_factory=list)
    dependency_manifest: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    docs: list[str] = Field(default_factory=list)
    tests: list[str] = Field(default_factory=list)
    snapshots: list[str] = Field(default_factory=list)


class CustomRule(StrictModel):
    """A named path class of the user's own: points when a changed file matches, optionally strong."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    globs: Annotated[list[str], Field(min_length=1)]
    points: Annotated[int, Field(ge=0, le=100)] = 0
    always_strong: bool = False
    reason: str = ""


class Budgets(StrictModel):
    per_task_usd: Annotated[float, Field(gt=0)] | None = 5.0
    per_day_usd: Annotated[float, Field(gt=0)] | None = 50.0


class Check(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    run: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    parser: Literal["junit", "sarif", "problem-matcher", "go-test-json", "exit-code"] = "exit-code"
    report: str | None = Field(
        default=None, description="Path (relative to the worktree) of a JUnit or SARIF report the check writes."
    )
    timeout_s: Annotated[float, Field(gt=0, le=7200)] = 300.0
    kind: Literal["tests", "lint", "typecheck", "other"] = "other"


class Verification(StrictModel):
    fast: list[Check] = Field(default_factory=list)
    strong: list[Check] = Field(default_factory=list)
    run_timeout_s: Annotated[float, Field(gt=0, le=14400)] = 1800.0
    max_output_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    sandbox: Literal["auto", "required", "off"] = "auto"
    max_patch_files: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=200, description="A lane's patch that changes more files than this fails (patch_rejected) before anything is written.")
    max_patch_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        default=1024 * 1024, description="A lane's patch (its diff) larger than this many bytes fails (patch_rejected).")
    dependency_dirs: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=64,
        description="Folders of installed dependencies (repository-relative, e.g. node_modules) that checks and agent commands "
        "see in the worktree, read-only and never copied: bound in the sandbox, a symlink without it. Only folders that exist "
        "in your repository and that git does not track; one that resolves outside the repository is refused. Default: the "
        "ones detected for the repository's toolchain (node_modules next to package.json; .venv or venv in a Python project).")

    @field_validator("dependency_dirs")
    @classmethod
    def _dependency_dirs_stay_inside(cls, names: list[str]) -> list[str]:
        for name in names:
            problem = dependency_dir_problem(name)
            if problem is not None:
                raise ValueError(f"verification.dependency_dirs: {name!r} {problem}")
        return names


def dependency_dir_problem(name: str) -> str | None:
    """Why `name` cannot be a dependency folder (None when it can): it must be a plain relative path inside
    the repository, never absolute, never climbing out (`..`), never git's own directory. Where it resolves
    to is checked when a run starts (workspace/dependencies.py): a link out of the repository is refused there."""
    if name.strip() != name or "\\" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "must be a plain relative path (no surrounding spaces, backslashes or control characters)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "must be relative to the repository, not absolute"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "must name a folder inside the repository (no `..`, `.` or empty parts)"
    if any(part.casefold().rstrip(". ") in (".git", "git~1") for part in parts):
        return "must not be or be inside .git"
    return None


class Worktrees(StrictModel):
    """Reused worktrees (workspace/pool.py): the disk a repository's pool may take."""

    pool_size: Annotated[int, Field(ge=1, le=8, description="Worktrees kept per repository for reuse; "
                                    "a run beyond them gets a one-off worktree, removed after")] = 2
    idle_days: Annotated[float, Field(gt=0, le=365, description="A worktree no run used for this long is removed "
                                      "at the start of the next run")] = 7.0


class VerifierUse(StrictModel):
    lanes: list[LaneName] = Field(default_factory=_both_lanes)
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0


class Policy(StrictModel):
    version: Literal[1] = 1
    models: Models
    routing: Routing = Routing()
    weights: Weights = Weights()
    paths: Paths = Paths()
    custom_rules: list[CustomRule] = Field(default_factory=list)
    budgets: Budgets = Budgets()
    verification: Verification = Verification()
    verifier: VerifierUse = VerifierUse()
    worktrees: Worktrees = Worktrees()
    agent: AgentLimits = AgentLimits()
    agents: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")], ExternalAgent] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _executors_exist(self) -> Policy:
        for lane in ("fast", "strong"):
            executor = getattr(self.models, lane).executor
            if executor in ("builtin", "oneshot"):
                continue
            if executor not in self.agents:
                known = ", ".join(["builtin", "oneshot", *sorted(self.agents)])
                raise ValueError(f"models.{lane}.executor {executor!r} is not builtin, oneshot or an agent under `agents:` ({known})")
        return self

    def agent_limits(self, lane: str) -> AgentLimits:
        """The built-in agent's limits for `lane`: the top-level `agent:` section with the lane's overrides."""
        spec: ModelSpec = getattr(self.models, lane)
        if spec.agent is None:
            return self.agent
        return self.agent.model_copy(update=spec.agent.model_dump(exclude_none=True))
