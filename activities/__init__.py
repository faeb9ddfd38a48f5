"""Temporal activities: LLM calls, database reads and writes, tools, event publishing."""
