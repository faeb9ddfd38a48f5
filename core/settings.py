"""Process configuration, read only from the environment (and a `.env` file).

Every URL is optional at this layer: the launcher fills in the embedded
services' URLs before it starts the API or the worker, and production sets
them explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = ""
    redis_url: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket_name: str = "assistants"
    s3_region: str = "us-east-1"
    temporal_address: str = ""
    temporal_namespace: str = "default"
    temporal_task_queue: str = "assistants-runs"
    model_url: str = "http://127.0.0.1:8000/v1"
    model_api_key: SecretStr = SecretStr("")
    # Per-model routing (core/llm/models.py): a JSON or TOML file, and/or inline JSON
    # (MODELS, which wins over the file). Both map model names or globs to servers.
    models_config: str = ""
    models: str = ""
    # Anthropic's Messages API; `claude-*` models go there when the key is set.
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str = "https://api.anthropic.com"
    # Anthropic requires max_tokens; used when the run sets no max_completion_tokens.
    anthropic_max_tokens: int = Field(default=4096, ge=1)
    # Seconds a run may stay active before it expires (OpenAI: 10 minutes).
    # At most 4 h: a model working that long heartbeats its workflow task ~3,600 times
    # (3 events each), and a run's history must stay far below Temporal's limits
    # (workflows/run.py MAX_TURNS).
    run_expiry_seconds: int = Field(default=600, ge=1, le=4 * 3600)
    # The longest a model may stay silent (no byte on the connection: before its first
    # token, between two tokens) before the call is abandoned and retried. Not a limit on
    # the whole call, which may last until the run expires: a CPU model prefilling a long
    # prompt is silent for minutes, and a long answer at a few tokens a second takes many.
    llm_timeout_seconds: float = Field(default=300.0, gt=0)
    # The workflow task timeout runs start with. The model turn runs inside a workflow
    # task (a local activity) that the worker heartbeats at 80% of it: a cancel reaches a
    # running turn within that (4 s), a dead worker's turn is taken over after it, and a
    # long answer costs a 3-event task per beat (a 3-minute answer: ~45 tasks at 5 s). 2 s
    # (stop 15) timed out 112-129 tasks in one 200-run load test on a CPU-starved 2-core
    # box (replays, updates refused meanwhile); 5 s: none. Runs keep the value they
    # started with.
    run_task_timeout_seconds: float = Field(default=5.0, ge=1, le=120)
    # Context window assumed for models the models config does not describe.
    model_context_window: int = Field(default=32768, ge=512)
    # Model-call retries, owned by Temporal (provider SDK/HTTP retries are off).
    llm_retry_initial_seconds: float = Field(default=1.0, gt=0)
    llm_retry_max_attempts: int = Field(default=6, ge=1)
    # Register-free by default: external clusters may not have our search
    # attributes; the embedded dev server does (the launcher turns this on).
    temporal_search_attributes: bool = False
    # Run workflows inside Temporal's sandbox. Off by default: the sandbox re-creates each
    # workflow's module state per run (measured: a sixth of the worker's CPU per run), and
    # the test suite replays real run histories through the sandbox instead
    # (tests/test_workflow_replay.py), so workflow code that is not sandbox-safe fails CI.
    workflow_sandbox: bool = False
    # Port of the worker's Prometheus /metrics endpoint; 0 (the default) serves none.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    # Uploads larger than this are refused with a 400 (OpenAI allows 512 MB;
    # we keep bytes in S3 but parse whole files in memory, hence a lower cap).
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    # OpenAI-compatible `/embeddings` endpoint for file_search. Unset: chunks
    # are stored without vectors and search is full-text only.
    embeddings_url: str = ""
    embeddings_model: str = "text-embedding-3-small"
    embeddings_api_key: SecretStr = SecretStr("")
    embeddings_timeout_seconds: float = Field(default=60.0, gt=0)
    # API keys (api/auth.py): "required" checks `Authorization: Bearer sk-proj-...` on
    # every route but /health; "open" serves everyone as project "default"; "auto"
    # is required unless the API binds a loopback host (127.0.0.1, ::1, localhost).
    auth_mode: Literal["required", "open", "auto"] = "auto"
    # Requests per minute per API key (a fixed Redis window); 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    # Largest request body accepted (413 above it). Multipart uploads may carry
    # max_file_bytes more, and the upload route checks the file itself.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1)
    # A streamed run sends an SSE comment (`: keep-alive`) after this many seconds without
    # an event, however long the model stays silent, so proxies and load balancers (often
    # idle-timed at 30-60 s) keep the connection.
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    # How long a stream keeps retrying Redis (from the last event it sent) before it ends
    # with an `error` event: a Redis restart or failover takes seconds to tens of them.
    stream_redis_retry_seconds: float = Field(default=30.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _use_psycopg_driver(cls, value: str) -> str:
        # The original project's examples use `postgres://`; SQLAlchemy needs
        # an explicit driver, and we use psycopg 3 for both sync and async.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @property
    def model_base_url(self) -> str:
        """MODEL_URL as an API base: a full `.../chat/completions` URL is accepted too."""
        url = self.model_url.rstrip("/")
        suffix = "/chat/completions"
        return url[: -len(suffix)] if url.endswith(suffix) else url


@lru_cache
def get_settings() -> Settings:
    return Settings()
