"""Integration tests; run from the repository root (pyproject.toml puts it on the path)."""
