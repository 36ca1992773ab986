"""Hostile and careless clients against the broker (a package, so its modules import
the helpers of tests/ without a conftest.py of their own shadowing tests/conftest.py)."""
