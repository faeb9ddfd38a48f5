"""The HTTP surface: OpenAI's Assistants API v2, under `/v1` and bare paths."""
