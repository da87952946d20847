"""Key answers kept in nginx's memory for the cached-tile fast path ("learned" keys).

The auth_request path (services/access/emap.py) costs every keyed cached tile a subrequest and a
lookup in nginx's auth cache. Instead, when the app allows a keyed e-map tile request (a key,
no token), it learns the exact case it allowed: (key, layer, origin) for a browser key,
(key, layer, client IP) for a server key. A sweeper in the app writes the learned cases into
two nginx `map` include files and reloads nginx gracefully, so nginx answers the same case from
memory with no subrequest. Only an exact, case-sensitive match is trusted (the map hashes
ignore case, a backreference check restores it) and only without an `Authorization` header or
token cookie; everything else keeps going through auth_request and the app.

The sweeper re-validates learned keys every SWEEP_SECONDS: revoked or unknown keys, keys of a disabled owner, a
binding that no longer admits the case, or a used-up daily tile quota remove the key's cases and
nginx is reloaded, so what the app would refuse is refused again within about
SWEEP_SECONDS + the key cache TTL (services.access.apikeys.KEY_TTL). Usage of keyed tiles nginx sends
itself is counted from its usage log as before (`emap_keys.fold_nginx_usage`).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from services.errors import AuthError
from tiles.errors import nginx_exception_xml, ogc_code_for
from tiles.frontdoor import NGINX

LOGGER = logging.getLogger("geoplat.auth")

FAST_DIR = "keys-fast"
MAX_CASES = 200_000
SWEEP_SECONDS = 5.0
TICK_SECONDS = 1.0
# what may be written into an nginx map: hex keys, layer ids, plain origins and IP addresses
_KEY = re.compile(r"^[0-9a-f]{32}$")
_CASE = re.compile(r"^[0-9a-f]{32}\|[a-z][a-z0-9_]{0,62}\|"
                   r"(o:https?://[a-z0-9.\-]{1,100}(:[0-9]{1,5})?|i:[0-9a-f.:]{2,45})$")


def fast_dir(node_dir: Path) -> Path:
    return node_dir / "nginx" / FAST_DIR


# nginx cannot give each key its own rate: a learned key is limited at the largest of these
# classes that does not exceed its own rate_per_second (a leaky bucket with that burst)
RATE_CLASSES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000)


def rate_class(rate_per_second: int) -> int:
    fitting = [c for c in RATE_CLASSES if c <= max(1, rate_per_second)]
    return fitting[-1]


RATE_EXCEEDED = nginx_exception_xml(ogc_code_for(429), "Rate limit of this API key exceeded.")


def case_of(value: str, layer: str | None, kind: str, origin: str | None, ip: str) -> str | None:
    """The learned-case string for an allowed request, or None if it cannot be expressed."""
    if not layer:
        return None
    where = f"o:{origin}" if kind == "browser" else f"i:{ip}"
    case = f"{value}|{layer}|{where}"
    return case if _CASE.match(case) else None


def learn(node_dir: Path, case: str, value: str) -> None:
    """Queue a case for the sweeper (one short line appended under a lock)."""
    d = fast_dir(node_dir)
    if not d.is_dir():
        return
    with open(d / "pending", "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps([case, value]) + "\n")


def reset(node_dir: Path) -> None:
    """Start with nothing learned (at build time): empty maps, no state."""
    d = fast_dir(node_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name in ("pending", "state.json"):
        (d / name).unlink(missing_ok=True)
    _write_maps(d, {}, {})


def _write_maps(d: Path, cases: dict[str, str], rates: dict[str, int] | None = None) -> None:
    files = {name: "".join(f'"{c}" "{c}";\n' for c in sorted(cases) if tag in c and _CASE.match(c))
             for name, tag in (("origin.map", "|o:"), ("ip.map", "|i:"))}
    files["rates.map"] = "".join(f'"{v}" "c{rate_class(r)}";\n'
                                 for v, r in sorted((rates or {}).items()) if _KEY.match(v))
    for name, text in files.items():
        tmp = d / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o600)  # the keys themselves: readable by the node's user only
        os.replace(tmp, d / name)


def _reload_nginx(node_dir: Path) -> bool:
    """Test the config with the new maps, then reload nginx gracefully (no dropped request)."""
    prefix = node_dir / "nginx"
    try:
        pid = int((prefix / "nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    test = subprocess.run([NGINX, "-t", "-q", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                           "-e", str(prefix / "logs" / "error.log")],
                          check=False, capture_output=True, text=True, timeout=30)
    if test.returncode != 0:
        LOGGER.error("learned key maps refused by nginx, not reloaded: %s", test.stderr[-500:])
        return False
    try:
        os.kill(pid, signal.SIGHUP)
        return True
    except OSError:
        return False


class Sweeper:
    """Merges learned cases into nginx's maps and drops what the app would now refuse."""

    def __init__(self, node_dir: Path, keys: Any):
        self.node_dir, self.keys = node_dir, keys
        self.dir = fast_dir(node_dir)
        self._last_sweep = 0.0

    def _take(self) -> tuple[dict[str, str], dict[str, int], bool]:
        """(cases, key rates, changed) after merging the pending queue into the state."""
        try:
            state = json.loads((self.dir / "state.json").read_text(encoding="utf-8"))
            cases: dict[str, str] = dict(state["cases"])
            rates: dict[str, int] = dict(state["rates"])
        except (OSError, ValueError, KeyError, TypeError):
            cases, rates = {}, {}
        changed = False
        pending = self.dir / "pending"
        if pending.exists():
            with open(pending, "r+", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                lines = f.read().splitlines()
                f.seek(0)
                f.truncate()
            for line in lines:
                try:
                    case, value = json.loads(line)
                except (ValueError, TypeError):
                    continue
                if isinstance(case, str) and _CASE.match(case) and case not in cases \
                        and len(cases) < MAX_CASES:
                    cases[case] = value
                    changed = True
        return cases, rates, changed

    async def _verdicts(self, values: set[str], *, quotas: bool) -> dict[str, Any]:
        """value -> its key record, None (refuse now), or "keep" (main node unreachable)."""
        verdict: dict[str, Any] = {}
        for value in values:
            try:
                key = await self.keys.key(value)
            except AuthError:  # main node unreachable: keep trusting what we knew, for a while
                verdict[value] = None if self.keys.failing_too_long() else "keep"
                continue
            if key is None or not key.usable or quotas and \
                    await self.keys.used_today(key.key_id, "tiles") >= key.quota("tiles"):
                verdict[value] = None
            else:
                verdict[value] = key
        return verdict

    @staticmethod
    def _admits(key: Any, case: str) -> bool:
        where = case.rsplit("|", 1)[1]
        origin, ip = (where[2:], "") if where.startswith("o:") else (None, where[2:])
        return key.permits(origin, ip)

    async def tick(self, *, force: bool = False) -> bool:
        """One round; returns True if nginx's maps changed (and nginx was told to reload)."""
        import anyio

        if not self.dir.is_dir():
            return False
        # the lock lives as long as this round (released by close() below); opening a local file
        # does not block the loop
        lock = open(self.dir / "sweep.lock", "a+")  # noqa: SIM115, ASYNC230
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # another worker of this node is sweeping
            cases, rates, changed = await anyio.to_thread.run_sync(self._take)
            now = time.monotonic()
            full = force or now - self._last_sweep >= SWEEP_SECONDS
            if full:
                self._last_sweep = now

                # services/access/emap.py imports this module (reset, the rate classes): a real cycle
                from services.access.emap import fold_nginx_usage

                await fold_nginx_usage(self.keys, self.node_dir, force=True)
                await self.keys.flush()  # the quota check below reads the node's counters
            # new keys (rate unknown) on every round, all keys on a full sweep
            values = set(cases.values()) if full else set(cases.values()) - set(rates)
            verdict = await self._verdicts(values, quotas=full)
            for case, value in list(cases.items()):
                key = verdict.get(value, "keep")
                if key is None or (key != "keep" and not self._admits(key, case)):
                    del cases[case]
                    changed = True
            for value, key in verdict.items():
                if key not in (None, "keep") and rates.get(value) != key.rate_per_second:
                    rates[value] = key.rate_per_second
                    changed = True
            for value in set(rates) - set(cases.values()):
                del rates[value]
                changed = True
            if not changed:
                return False
            # a case is served from memory only once its key's rate limit is known
            served = {c: v for c, v in cases.items() if v in rates}
            state = self.dir / "state.json"
            def write() -> None:
                state.write_text(json.dumps({"cases": cases, "rates": rates}), encoding="utf-8")
                os.chmod(state, 0o600)
                _write_maps(self.dir, served, rates)

            await anyio.to_thread.run_sync(write)
            await anyio.to_thread.run_sync(_reload_nginx, self.node_dir)
            return True
        finally:
            lock.close()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOGGER.exception("key fast-path sweep failed")
            await asyncio.sleep(TICK_SECONDS)
