"""The supply tests' browser fixture (tests/support/browser_support.py): the status page's
supply panel (tests/supply/test_supply_federation.py)."""

from browser_support import browser  # noqa: F401  (a fixture: pytest finds it here)
