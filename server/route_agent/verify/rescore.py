"""Score the patch a lane returned: if it touches more than the task did, the task escalates.

The risk floor comes from facts in the worktree, so the actual diff is classified again with the
same router. New always-strong conditions (auth, migrations, CI, deploy config, secrets) or a
symlink or exec-bit change that the original change set did not have are scope creep, and so is a
change to a file that makes other tools run code (`verify/surface.py`: .gitattributes, .envrc, a
.pth file, a Makefile, setup.py, ...) that the task did not already touch.
"""

from __future__ import annotations

from dataclasses import dataclass

from route_agent.routing.decide import Decision, Router
from route_agent.signals.changeset import ChangeSet
from route_agent.signals.compute import Evidence
from route_agent.verify.findings import Finding
from route_agent.verify.surface import surface_findings

SCOPE_SIGNALS = ("file_mode_change", "secret_in_content", "lookalike_path")


@dataclass(frozen=True)
class ScopeReport:
    decision: Decision
    new_conditions: tuple[str, ...]
    findings: tuple[Finding, ...]


def _scope_finding(message: str, evidence: Evidence | None, rule: str) -> Finding:
    where = f": {evidence}" if evidence else ""
    return Finding(
        "rescore",
        message + where,
        "error",
        evidence.path if evidence else None,
        evidence.line if evidence else None,
        rule=rule,
        kind="scope",
    )


def rescore_patch(router: Router, original: Decision, patch: ChangeSet) -> ScopeReport:
    # The brief is not part of the patch: only what the diff itself touches counts here.
    after = router.classify(patch, "")
    before_conditions = {hit.condition for hit in original.always_strong} | set(original.signals.raised)
    new: list[str] = []
    findings: list[Finding] = []
    for hit in after.always_strong:
        if hit.condition not in before_conditions:
            new.append(hit.condition)
            findings.append(
                _scope_finding(
                    f"the patch touches {hit.reason} ({hit.condition}) that the task did not",
                    hit.evidence[0] if hit.evidence else None,
                    hit.condition,
                )
            )
    for name in SCOPE_SIGNALS:
        sig = after.signals.raised.get(name)
        if sig is not None and name not in before_conditions and name not in new:
            new.append(name)
            findings.append(_scope_finding(f"the patch brings {sig.reason}", sig.evidence[0] if sig.evidence else None, name))
    surface = surface_findings(patch, set(original.signals.paths))
    if surface:
        findings.extend(surface)
        new.append("execution_surface")
    return ScopeReport(after, tuple(new), tuple(findings))
