"""External agents as lane executors: an agent the user already runs (aider, mini-swe-agent, ...).

    outcome = await run_external_agent(ExternalRun(...))

The agent's command (an argv list from the policy's `agents:` section) runs once in the attempt's
worktree with its placeholders filled in: `{model}` (the lane's routed model), `{base_url}` (its
OpenAI-compatible endpoint), `{brief_file}` (the brief, earlier findings and what an earlier
attempt tried, written to a file in the agent's private scratch directory) and `{workdir}` (the
worktree). It runs in the bubblewrap sandbox with the filesystem confined as for checks (read-only
root, the worktree and its scratch directory writable, `.git` read-only, own PID namespace) but the
network shared, since it must reach its model. It reaches the model through a relay on 127.0.0.1
(relay.py): `{base_url}` is the relay's address and the agent's `key_env` holds a token valid for this
attempt only, so the lane's key never enters the sandbox, every request passes the outbound gate
(never-send and secret rules), and every call is metered (tokens, cost, steps) and budgeted. Its
environment is the checks' allowlist plus that token, and HOME is the scratch directory (agents keep
caches and settings there). Without a sandbox nothing runs unless the user's own policy allows it, as for the
built-in loop. Its edits (the worktree diff, taken by the caller) are the patch, verified as any other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from route_agent.lanes.agent import sandbox_for_agent
from route_agent.lanes.budget import BudgetGuard, TaskSpend
from route_agent.lanes.errors import LaneError
from route_agent.lanes.prompt import redact_text
from route_agent.lanes.relay import ModelRelay, RelayCall
from route_agent.policy.keys import api_key_env_for
from route_agent.policy.models import Check, ExternalAgent, ModelSpec
from route_agent.signals.taint import clean_tainted
from route_agent.verify.checks import CheckRun, SandboxInfo, run_one
from route_agent.workspace.dependencies import NO_DEPENDENCY_DIRS, DependencyDirs

__all__ = ["ExternalOutcome", "ExternalRun", "base_url_for", "fill_placeholders", "run_external_agent"]

PLACEHOLDERS = ("model", "base_url", "brief_file", "brief", "workdir", "scratch", "max_context_tokens", "max_output_tokens")
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
OUTPUT_SHOWN = 4096

_DEFAULT_BASE_URLS = {
    "openrouter": "https://openrouter.ai/api/v1",
    "openai": "https://api.openai.com/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}


def base_url_for(spec: ModelSpec) -> str:
    """The model's OpenAI-compatible API root (`.../v1`), as the lane client would call it."""
    if spec.base_url:
        return spec.base_url.rstrip("/").removesuffix("/chat/completions")
    return _DEFAULT_BASE_URLS.get(spec.provider, "")


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace the placeholders (`{model}`, `{base_url}`, `{brief}`, `{brief_file}`, `{workdir}`,
    `{scratch}`, `{max_context_tokens}`, `{max_output_tokens}`); other braces are left alone."""
    for name in PLACEHOLDERS:
        text = text.replace("{" + name + "}", values.get(name, ""))
    return text


@dataclass
class ExternalRun:
    name: str
    agent: ExternalAgent
    spec: ModelSpec
    worktree: Path
    brief: str
    findings: Sequence[str] = ()
    tried: Sequence[str] = ()
    environ: Mapping[str, str] | None = None
    allow_unsandboxed: bool = False
    sandbox: SandboxInfo | None = None
    """For tests: the sandbox to use instead of probing for bubblewrap."""
    guard: BudgetGuard | None = None
    task: TaskSpend | None = None
    """The run's budgets and what the task has spent: the relay refuses calls past them."""
    on_call: Callable[[RelayCall], None] | None = None
    """Called (from the relay's thread) after each request the agent made."""
    dependencies: DependencyDirs = NO_DEPENDENCY_DIRS
    """The user's installed-dependency folders, visible to the agent read-only (workspace/dependencies.py)."""


@dataclass
class ExternalOutcome:
    status: str
    """finished (exit 0), failed (another exit code), timeout, budget, error, sandbox_unavailable, config"""
    message: str
    exit_code: int | None = None
    duration_s: float = 0.0
    sandboxed: bool = True
    output: str = ""
    """The head and tail of what the agent printed, secrets redacted (for findings and the transcript)."""
    argv: list[str] = field(default_factory=list)
    redactions: list[dict[str, Any]] = field(default_factory=list)
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_estimated: bool = False
    """Some call's answer carried no usage: its tokens were estimated from what was sent and received."""
    relay_redactions: int = 0
    """Redactions the outbound gate made in the agent's requests."""
    budget_refusals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "finished"


def _brief_text(run: ExternalRun) -> str:
    clean = clean_tainted(run.brief)
    parts = [clean.text.strip()]
    if run.findings:
        parts += ["", "Problems found in the previous attempt (its edits were discarded; you start from the original files):"]
        parts += [f"- {' '.join(line.split())[:300]}" for line in run.findings[:40]]
    if run.tried:
        parts += ["", "What the previous attempt ran (command -> result):"]
        parts += [f"- {' '.join(line.split())[:200]}" for line in run.tried[-30:]]
    parts += ["", "Edit the files in the working directory; do not commit. Do not delete or skip tests: the change is verified "
              "afterwards by checks you do not control."]
    return "\n".join(parts) + "\n"


async def run_external_agent(run: ExternalRun) -> ExternalOutcome:
    """Run the agent once to its end (or its timeout); see the module docstring."""
    environ = dict(os.environ if run.environ is None else run.environ)
    key_env = api_key_env_for(run.spec)
    key = environ.get(key_env, "").strip() if key_env else ""
    if key_env and not key:
        return ExternalOutcome("config", f"{key_env} is not set; the {run.name} agent needs the lane's key for {run.spec.model}")
    sandbox: SandboxInfo | None
    if run.sandbox is not None:
        sandbox = run.sandbox
    else:
        sandbox, refusal = await asyncio.to_thread(sandbox_for_agent, run.allow_unsandboxed)  # probes once: a subprocess
        if refusal is not None:
            return ExternalOutcome("sandbox_unavailable", refusal.replace("the built-in agent runs", f"the {run.name} agent runs"),
                                   sandboxed=False)
    upstream = base_url_for(run.spec)
    try:
        relay = ModelRelay(upstream, key or None, run.spec, guard=run.guard, task=run.task, on_call=run.on_call,
                           timeout_s=run.agent.timeout_s)
    except LaneError as exc:
        return ExternalOutcome("config", f"the {run.name} agent cannot reach its model: {exc}")
    scratch = Path(tempfile.mkdtemp(prefix="route-agent-external-"))
    try:
        relay.__enter__()
        brief_file = scratch / "brief.md"
        text, redactions = redact_text(_brief_text(run), "<brief>")
        brief_file.write_text(text, "utf-8")
        values = {"model": run.spec.model, "base_url": relay.base_url, "brief_file": str(brief_file), "brief": text,
                  "workdir": str(run.worktree), "scratch": str(scratch), "max_context_tokens": str(run.spec.max_context_tokens),
                  "max_output_tokens": str(run.spec.max_output_tokens)}
        for name, content in run.agent.files.items():
            target = scratch / name
            if ".." in Path(name).parts:
                return ExternalOutcome("config", f"agents.{run.name}.files: {name!r} must stay inside the scratch directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(fill_placeholders(content, values), "utf-8")
        argv = [fill_placeholders(arg, values) for arg in run.agent.command]
        extra = {name: fill_placeholders(value, values) for name, value in run.agent.env.items()}
        extra.update(HOME=str(scratch), XDG_CONFIG_HOME=str(scratch / ".config"), XDG_CACHE_HOME=str(scratch / ".cache"),
                     XDG_DATA_HOME=str(scratch / ".local" / "share"))
        if run.agent.key_env:
            # The relay's token, never the lane's key: the relay puts the key on the request once it left the sandbox.
            extra[run.agent.key_env] = relay.token
        check = Check.model_construct(name=f"agent-{run.name}"[:64], run=argv, parser="exit-code", report=None,
                                      timeout_s=run.agent.timeout_s, kind="other")
        started = time.monotonic()
        result = await run_one(check, run.worktree, environ=environ, deadline=started + run.agent.timeout_s,
                               max_output_bytes=MAX_OUTPUT_BYTES, sandbox=sandbox, scratch_dir=scratch, extra_env=extra,
                               share_network=True, dependencies=run.dependencies)
        output = result.output_excerpt
        if len(output) > 2 * OUTPUT_SHOWN:
            output = output[:OUTPUT_SHOWN] + "\n[…]\n" + output[-OUTPUT_SHOWN:]
        if key:
            output = output.replace(key, "[REDACTED:lane key]")
        output, more = redact_text(output, f"<{run.name} output>")
        redactions += more
        left_out = [{"kind": "redacted", "path": r.path, "line": r.line, "rule": r.rule} for r in redactions]
        status, message = _how_it_ended(result, run)
        outcome = ExternalOutcome(status, message, result.exit_code, result.duration_s, sandbox is not None, output,
                                  _shown_argv(argv, key), left_out)
        return _with_relay_totals(outcome, relay, run.name)
    finally:
        relay.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _how_it_ended(result: CheckRun, run: ExternalRun) -> tuple[str, str]:
    if result.error:
        return "error", result.error
    if result.timed_out:
        return "timeout", f"the {run.name} agent ran past its timeout_s of {run.agent.timeout_s:g} s and was killed"
    if result.output_exceeded:
        return "error", f"the {run.name} agent printed more than {MAX_OUTPUT_BYTES // (1024 * 1024)} MB and was killed"
    if result.exit_code == 0:
        return "finished", f"the {run.name} agent finished in {result.duration_s:.1f} s"
    return "failed", f"the {run.name} agent exited with {result.exit_code}"


def _with_relay_totals(outcome: ExternalOutcome, relay: ModelRelay, name: str) -> ExternalOutcome:
    relay.close()  # the agent has ended, and with it every call: the totals are final
    outcome.model_calls, outcome.input_tokens, outcome.output_tokens = len(relay.model_calls), relay.input_tokens, relay.output_tokens
    outcome.cost_usd, outcome.cost_estimated, outcome.relay_redactions = relay.cost_usd, relay.estimated, relay.redactions
    outcome.budget_refusals = [c.refused for c in relay.calls if c.refused]
    if outcome.budget_refusals and outcome.status != "timeout":
        outcome.status = "budget"
        outcome.message = f"the {name} agent was stopped by the budget: {outcome.budget_refusals[0]}"
    return outcome


def _shown_argv(argv: list[str], key: str) -> list[str]:
    return [a.replace(key, "[REDACTED:lane key]") if key else a for a in argv]
