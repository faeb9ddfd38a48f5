"""Wire schemas in OpenAI's exact shapes."""
