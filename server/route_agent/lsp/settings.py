"""Client options: raw (all optional, camelCase, as the client sends them) -> frozen resolved settings.

Options arrive in `initializationOptions` and again from `workspace/configuration` (section
`routeAgent`). Each source is validated field by field: an invalid field is reported once and
dropped, the rest are still used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

LogLevel = Literal["error", "warning", "info", "debug"]
LaneOverride = Literal["auto", "fast", "strong"]
SandboxMode = Literal["auto", "required", "off"]
Provider = Literal["openrouter", "openai", "ollama", "openai-compatible"]

DEFAULT_DEBOUNCE_MS = 300
CONFIG_SECTION = "routeAgent"


class RawOptions(BaseModel):
    """What a client may send; every field optional, unknown keys ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    policy_path: str | None = None
    debounce_ms: int | None = Field(default=None, ge=0, le=60_000)
    log_level: LogLevel | None = None
    lane: LaneOverride | None = None
    state_dir: str | None = None
    workspace_trusted: bool | None = None
    sandbox: SandboxMode | None = None
    provider_base_urls: dict[str, str] | None = None
    risk_notifications: bool | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings: every value present and typed."""

    policy_path: Path | None = None
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    log_level: LogLevel = "info"
    lane: LaneOverride = "auto"
    state_dir: Path | None = None
    workspace_trusted: bool = True
    """False in an editor's restricted mode: nothing from the repository runs (no routed runs)."""
    sandbox: SandboxMode | None = None
    """Overrides the policy's verification.sandbox for routed runs."""
    provider_base_urls: tuple[tuple[str, str], ...] = ()
    """Per provider, the endpoint for models whose policy entry names no base_url (the user's own
    application-level setting; never from the repository)."""
    risk_notifications: bool = False
    """Send `routeAgent/riskChanged` after each refresh (clients that asked for it)."""

    @property
    def debounce_s(self) -> float:
        return self.debounce_ms / 1000.0

    @property
    def logging_level(self) -> int:
        return {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}[self.log_level]


def parse_raw(data: Any) -> tuple[RawOptions, list[str]]:
    """Validate `data` field by field; returns the valid part and one message per invalid field."""
    if data is None:
        return RawOptions(), []
    if not isinstance(data, dict):
        return RawOptions(), [f"route-agent settings must be an object, got {type(data).__name__}"]
    if isinstance(data.get(CONFIG_SECTION), dict):
        data = data[CONFIG_SECTION]
    try:
        return RawOptions.model_validate(data), []
    except ValidationError as exc:
        problems: list[str] = []
        bad: set[str] = set()
        for err in exc.errors(include_url=False):
            key = str(err["loc"][0]) if err["loc"] else "?"
            bad.add(key)
            problems.append(f"setting {key!r} ignored: {err['msg']}")
        kept = {k: v for k, v in data.items() if k not in bad}
        return RawOptions.model_validate(kept), problems


def resolve(*layers: RawOptions, workspace_root: Path | None = None) -> Settings:
    """Merge raw layers (later wins where set) into settings; relative paths resolve against the root."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
    policy_path = _path(merged.get("policy_path"), workspace_root)
    state_dir = _path(merged.get("state_dir"), workspace_root)
    return Settings(
        policy_path=policy_path,
        debounce_ms=int(merged.get("debounce_ms", DEFAULT_DEBOUNCE_MS)),
        log_level=merged.get("log_level", "info"),
        lane=merged.get("lane", "auto"),
        state_dir=state_dir,
        workspace_trusted=bool(merged.get("workspace_trusted", True)),
        sandbox=merged.get("sandbox"),
        provider_base_urls=tuple(sorted((k, v) for k, v in (merged.get("provider_base_urls") or {}).items()
                                        if k in ("openrouter", "openai", "ollama", "openai-compatible") and v.startswith(("http://", "https://")))),
        risk_notifications=bool(merged.get("risk_notifications", False)),
    )


def _path(value: str | None, root: Path | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    return path
