"""The browser tests' shared fixture (tests/support/browser_support.py, also used by tests/sdk/)."""

from browser_support import browser  # noqa: F401  (a fixture: pytest finds it here)
