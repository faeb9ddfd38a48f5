"""Strict checks of response bodies against the official SDK's own types."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def assert_wire(model: type[BaseModel], data: dict[str, Any]) -> None:
    """`data` parses as `model`, carries every one of its fields and nothing else."""
    model.model_validate(data)
    fields = set(model.model_fields)
    missing = fields - set(data)
    extra = set(data) - fields
    assert not missing, f"{model.__name__} lacks {sorted(missing)}"
    assert not extra, f"{model.__name__} has unknown fields {sorted(extra)}"
