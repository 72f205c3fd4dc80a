"""Which environment variable holds a model's API key, and whether a call needs one."""

from __future__ import annotations

from collections.abc import Mapping

from route_agent.policy.models import ModelSpec

DEFAULT_KEY_ENV = {"openrouter": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY"}


def api_key_env_for(spec: ModelSpec) -> str | None:
    """The variable to read, or None when the provider needs no key (ollama, a local server)."""
    if spec.api_key_env:
        return spec.api_key_env
    return DEFAULT_KEY_ENV.get(spec.provider)


def missing_key(spec: ModelSpec, environ: Mapping[str, str]) -> str | None:
    """The name of the unset variable this model needs, or None when it can be called."""
    name = api_key_env_for(spec)
    if name is None:
        return None
    return None if environ.get(name, "").strip() else name
