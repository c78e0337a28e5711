"""The public API as a user types it, checked by mypy (tests/test_types.py): filled in by the next commit."""
