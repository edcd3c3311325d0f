"""Helpers shared by test modules. Imported as `support.<module>`: tests/ has no __init__.py, and pytest puts
tests/ on sys.path when it loads tests/conftest.py (rootdir conftest, default `prepend` import mode)."""
