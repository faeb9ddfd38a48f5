"""Process configuration, read only from the environment (and a `.env` file).

Every URL is optional at this layer: the launcher fills in the embedded
services' URLs before it starts the API or the worker, and production sets
them explicitly.
"""

from __future__ import annotations

from functools import lru_cache

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
    # Seconds a run may stay active before it expires (OpenAI: 10 minutes).
    run_expiry_seconds: int = Field(default=600, ge=1)
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    # Model-call retries, owned by Temporal (provider SDK/HTTP retries are off).
    llm_retry_initial_seconds: float = Field(default=1.0, gt=0)
    llm_retry_max_attempts: int = Field(default=6, ge=1)
    # Register-free by default: external clusters may not have our search
    # attributes; the embedded dev server does (the launcher turns this on).
    temporal_search_attributes: bool = False

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
