"""Temporal workflows and their small dataclass inputs/outputs. No I/O imports here."""
