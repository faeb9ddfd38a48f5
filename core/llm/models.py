"""Which server answers a model name, and what that server can do.

Configured by `MODELS_CONFIG` (a JSON or TOML file) and/or `MODELS` (a JSON string), both
mapping exact model names or glob patterns to an entry:

    {"llama-3*": {"provider": "openai", "base_url": "http://gpu:8000/v1",
                  "api_key_env": "GPU_KEY", "context_window": 8192,
                  "capabilities": {"native_tools": false, "json_schema": true}}}

Keys never live in the file: an entry names the env var that holds its key.
An entry without `capabilities` (and a model no entry matches) has them detected at
first use (core/llm/detect.py); `"capabilities": {}` means the defaults, undetected.
Unknown models go to MODEL_URL / MODEL_API_KEY; `claude-*` goes to Anthropic when
ANTHROPIC_API_KEY is set. Model names are sent to the server exactly as given.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

ProviderKind = Literal["openai", "anthropic"]
_PROVIDERS: tuple[ProviderKind, ...] = ("openai", "anthropic")
_ENTRY_KEYS = {"provider", "base_url", "api_key_env", "context_window", "capabilities"}


@dataclass(frozen=True)
class Capabilities:
    """What an OpenAI-compatible server (really: the model's chat template) handles."""

    native_tools: bool = True  # accepts `tools` and answers with `tool_calls`
    json_schema: bool = False  # enforces `response_format: json_schema` (guided decoding)
    vision: bool = True  # accepts image content parts
    tool_role: bool = True  # the template renders assistant tool_calls and role "tool"
    tool_choice_object: bool = True  # accepts {"type": "function", ...} as tool_choice
    content_tool_calls: bool = True  # look for tool calls written as JSON in the content


_CAPABILITY_KEYS = {f.name for f in fields(Capabilities)}


@dataclass(frozen=True)
class ModelEntry:
    pattern: str
    provider: ProviderKind = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    detect: bool = True  # no `capabilities` given: find them out at first use


@dataclass(frozen=True)
class ModelRoute:
    """Where one request goes. `api_key` is resolved and kept out of reprs and logs."""

    provider: ProviderKind
    base_url: str
    api_key: str | None = field(repr=False)
    context_window: int | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    pattern: str = ""  # the config entry that matched; "" for the defaults
    detect: bool = True  # capabilities not configured: detected at first use


def _entry(pattern: str, raw: Any, source: str) -> ModelEntry:
    where = f"{source}: model {pattern!r}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must map to an object")
    if "api_key" in raw:
        # A key in a config file ends up in repos and backups; an env var name does not.
        raise ValueError(f"{where}: put the key in an env var and name it in 'api_key_env'")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    provider = raw.get("provider", "openai")
    if provider not in _PROVIDERS:
        raise ValueError(f"{where}: provider must be one of {list(_PROVIDERS)}")
    caps = raw.get("capabilities") or {}
    if not isinstance(caps, Mapping) or set(caps) - _CAPABILITY_KEYS:
        raise ValueError(f"{where}: capabilities must be an object with keys from "
                         f"{sorted(_CAPABILITY_KEYS)}")
    if not all(isinstance(v, bool) for v in caps.values()):
        raise ValueError(f"{where}: capabilities must be true or false")
    window = raw.get("context_window")
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise ValueError(f"{where}: context_window must be a positive integer")
    for key in ("base_url", "api_key_env"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ValueError(f"{where}: {key} must be a string")
    return ModelEntry(pattern=pattern, provider=provider, base_url=raw.get("base_url"),
                      api_key_env=raw.get("api_key_env"), context_window=window,
                      capabilities=Capabilities(**caps), detect=raw.get("capabilities") is None)


def parse_entries(raw: Any, source: str) -> list[ModelEntry]:
    """Entries from a decoded config: `{name: entry}` or `{"models": {name: entry}}`."""
    if isinstance(raw, Mapping) and isinstance(raw.get("models"), Mapping):
        raw = raw["models"]  # TOML wants a table: [models."llama-3*"]
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: expected an object mapping model names to entries")
    return [_entry(str(pattern), value, source) for pattern, value in raw.items()]


def load_entries(path: str, inline: str) -> list[ModelEntry]:
    """MODELS (inline JSON) first, so it overrides the MODELS_CONFIG file."""
    entries: list[ModelEntry] = []
    if inline.strip():
        try:
            entries += parse_entries(json.loads(inline), "MODELS")
        except json.JSONDecodeError as exc:
            raise ValueError(f"MODELS is not valid JSON: {exc}") from None
    if path:
        text = Path(path).read_text(encoding="utf-8")
        try:
            decoded = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"MODELS_CONFIG {path}: {exc}") from None
        entries += parse_entries(decoded, path)
    return entries


class ModelTable:
    """Resolves a model name to a route: exact names, then globs, then the defaults."""

    def __init__(self, entries: list[ModelEntry], *, default_url: str,
                 default_key: str | None, anthropic_url: str, anthropic_key: str | None,
                 env: Mapping[str, str]) -> None:
        self._exact = {e.pattern: e for e in reversed(entries) if not _is_glob(e.pattern)}
        self._globs = [e for e in entries if _is_glob(e.pattern)]
        self._defaults = {"openai": (default_url, default_key),
                          "anthropic": (anthropic_url, anthropic_key)}
        self._env = env
        for entry in entries:
            if entry.api_key_env and not env.get(entry.api_key_env):
                logger.warning("models config: %r names api_key_env %s, which is not set",
                               entry.pattern, entry.api_key_env)

    def resolve(self, model: str) -> ModelRoute:
        entry = self._exact.get(model) or next(
            (e for e in self._globs if fnmatch.fnmatchcase(model, e.pattern)), None)
        if entry is not None:
            url, key = self._defaults[entry.provider]
            if entry.api_key_env:
                key = self._env.get(entry.api_key_env) or None
            return ModelRoute(entry.provider, entry.base_url or url, key,
                              entry.context_window, entry.capabilities, entry.pattern,
                              entry.detect)
        url, key = self._defaults["anthropic"]
        if key and model.startswith("claude-"):
            return ModelRoute("anthropic", url, key)
        url, key = self._defaults["openai"]
        return ModelRoute("openai", url, key)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
