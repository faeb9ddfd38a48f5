"""LLM providers behind one neutral turn interface (no Assistants wire types here)."""
