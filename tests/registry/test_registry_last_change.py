"""`health.last_change`: since when a record's health holds, from its kept history (oldest
first), as the health tree (`changed`) and the catalogue's records (`health_changed`) say."""

from __future__ import annotations

from services.registry.health import last_change


def obs(at: str, status: str) -> dict:
    return {"at": at, "status": status, "latency_ms": 1.0}


def test_the_first_observation_of_the_latest_run() -> None:
    history = [obs("t1", "up"), obs("t2", "down"), obs("t3", "up"), obs("t4", "up")]
    assert last_change("up", history) == "t3"
    assert last_change("up", history[:1]) == "t1"  # the whole kept history: at least since
    assert last_change("down", history[:2]) == "t2"


def test_no_history_or_another_status_last_tells_nothing() -> None:
    assert last_change("unknown", []) is None
    assert last_change("down", [obs("t1", "up")]) is None  # health came from a push, not here
    assert last_change("up", None) is None
    assert last_change("up", ["junk", {"status": "up", "at": 5}]) is None
