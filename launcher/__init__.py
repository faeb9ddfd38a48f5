"""The `assistants` command and the embedded stack it can start."""
