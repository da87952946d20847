"""The one way the tests wait: poll the real condition (a status, a row, a file, a port, a log
line) until it holds, with a deadline. No test sleeps a fixed time.

The default interval is 0.2 s (`GEOPLAT_TEST_POLL_INTERVAL` changes it, e.g. on a slow
machine); a call passes `interval=` where the condition is costly or rate limited.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = float(os.environ.get("GEOPLAT_TEST_POLL_INTERVAL", "0.2"))


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, message: str = "", *,
             interval: float | None = None,
             ignore: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Call `predicate` until it returns something truthy; return that value. (A requests or
    httpx Response is falsy when its status is 4xx/5xx: poll a bool and keep the response.)

    An exception of a type in `ignore` (by default any `Exception`: not served yet, connection
    refused) counts as "not yet". After `timeout` seconds it raises AssertionError naming
    `message` and the last value or exception (chained).
    """
    step = INTERVAL if interval is None else interval
    deadline = time.monotonic() + timeout
    while True:
        error: BaseException | None = None
        try:
            value = predicate()
        except ignore as exc:
            value, error = None, exc  # type: ignore[assignment]
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            last = f"{type(error).__name__}: {error}" if error is not None else repr(value)
            raise AssertionError(f"not within {timeout:g} s: {message or predicate!r} "
                                 f"(last: {last[:500]})") from error
        time.sleep(step)


def wait_gone(predicate: Callable[[], object], timeout: float = 15.0, message: str = "", *,
              interval: float | None = None) -> None:
    """Wait until `predicate` returns something falsy (a process gone, a file removed)."""
    wait_for(lambda: not predicate(), timeout, message, interval=interval, ignore=())
