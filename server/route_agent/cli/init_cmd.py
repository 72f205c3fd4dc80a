"""`route-agent init`: print the checks detected in a repository, or write them as its policy.

Detection reads files only (policy/toolchain.py). The written file is a repository policy like any
other: its commands still need `route-agent policy approve` before they run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import yaml

from route_agent.cli.errors import fail
from route_agent.policy import REPO_POLICY_PATHS
from route_agent.policy.toolchain import DetectedChecks, detect_checks, read_repo_facts
from route_agent.workspace.git import WorkspaceError, open_repo


def policy_text(detected: DetectedChecks) -> str:
    """The `verification:` section as a policy file, one flow mapping per check (argv lists)."""
    lines = [
        "# Written by `route-agent init` from the files this repository carries:",
        *(f"#   {reason}" for reason in detected.reasons),
        "# A repository policy: its commands run only after `route-agent policy approve`.",
        "version: 1",
        "verification:",
    ]
    sections: dict[str, Any] = detected.policy_data()["verification"]
    for lane in ("fast", "strong"):
        checks = sections[lane]
        if not checks:
            lines.append(f"  {lane}: []")
            continue
        lines.append(f"  {lane}:")
        lines.extend("    - " + yaml.safe_dump(check, default_flow_style=True, sort_keys=False, width=10_000).strip()
                     for check in checks)
    return "\n".join(lines) + "\n"


@click.command("init")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The repository (default: the current directory).")
@click.option("--write", "write", is_flag=True, help="Write the checks as .route-agent/policy.yaml (never over an existing policy).")
def init_command(workspace: Path | None, write: bool) -> None:
    """Print the checks detected from the repository's own files; --write saves them as its policy."""
    start = (workspace or Path.cwd()).absolute()
    try:
        root = open_repo(start).root
    except WorkspaceError:
        root = start  # not a git repository yet: detection needs only the files
    if not root.is_dir():
        fail(f"{root} is not a directory; pass --workspace DIR")
    detected = detect_checks(read_repo_facts(root))
    click.echo(f"toolchains: {', '.join(detected.toolchains) or 'none found'}")
    for check in detected.checks:
        click.echo(f"check {check.name} ({check.kind}): {' '.join(check.run)}")
    for reason in detected.reasons:
        click.echo(f"  {reason}")
    if not write:
        existing = [rel for rel in REPO_POLICY_PATHS if (root / rel).is_file()]
        if existing:
            click.echo(f"{existing[0]} exists: its `verification:` (if any) replaces these checks.")
        else:
            click.echo("Without a repository policy these are the default verification. "
                       "`route-agent init --write` saves them as .route-agent/policy.yaml.")
        return
    if not detected.checks:
        fail("no check was detected, so there is nothing to write; write a `verification:` section in "
             ".route-agent/policy.yaml yourself")
    for rel in REPO_POLICY_PATHS:
        if (root / rel).exists():
            fail(f"{root / rel} already exists; nothing was written. Edit its `verification:` section, "
                 f"or move it away and run `route-agent init --write` again")
    target = root / REPO_POLICY_PATHS[0]
    target.parent.mkdir(exist_ok=True)
    try:
        # O_EXCL: a policy that appeared meanwhile is never overwritten.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        fail(f"{target} already exists; nothing was written")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(policy_text(detected))
    click.echo(f"wrote {target.relative_to(root)}: a repository policy; approve its commands before they run: "
               f"route-agent policy approve --workspace {root}")
