"""One `complete()` for every model: dispatches each request by `request.model`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

import httpx

from core.llm.anthropic import AnthropicProvider
from core.llm.models import ModelRoute, ModelTable, load_entries
from core.llm.openai_compatible import OnDelta, OpenAICompatibleProvider
from core.llm.types import ChatRequest, TurnOutcome
from core.settings import Settings


class _Provider(Protocol):
    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome: ...


class ProviderRouter:
    """Providers are built on first use per route and share one HTTP client (one pool)."""

    def __init__(self, http: httpx.AsyncClient, table: ModelTable,
                 anthropic_max_tokens: int = 4096, default_context_window: int = 32768) -> None:
        self._http = http
        self._table = table
        self._max_tokens = anthropic_max_tokens
        self._default_window = default_context_window
        self._providers: dict[ModelRoute, _Provider] = {}

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: Settings,
                      env: Mapping[str, str] | None = None) -> ProviderRouter:
        """Reads the models config now, so a broken one stops the worker at startup."""
        table = ModelTable(
            load_entries(settings.models_config, settings.models),
            default_url=settings.model_base_url,
            default_key=settings.model_api_key.get_secret_value() or None,
            anthropic_url=settings.anthropic_base_url,
            anthropic_key=settings.anthropic_api_key.get_secret_value() or None,
            env=os.environ if env is None else env)
        return cls(http, table, settings.anthropic_max_tokens, settings.model_context_window)

    def route(self, model: str) -> ModelRoute:
        """Where `model` goes and what it can do."""
        return self._table.resolve(model)

    def context_window(self, model: str) -> int:
        """Tokens `model` takes: from the models config, else MODEL_CONTEXT_WINDOW."""
        return self._table.resolve(model).context_window or self._default_window

    async def complete(self, request: ChatRequest, on_delta: OnDelta) -> TurnOutcome:
        route = self._table.resolve(request.model)
        provider = self._providers.get(route)
        if provider is None:
            provider = self._providers[route] = self._build(route)
        return await provider.complete(request, on_delta)

    def _build(self, route: ModelRoute) -> _Provider:
        if route.provider == "anthropic":
            return AnthropicProvider(self._http, route.base_url, route.api_key, self._max_tokens)
        return OpenAICompatibleProvider(self._http, route.base_url, route.api_key,
                                        route.capabilities, detect=route.detect)
