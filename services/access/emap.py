"""Access rules for the e-map tile services (WMTS/WMS/TMS and the Tianditu routes).

The tiles engine asks the check its route's requirement hands it (services/access/require.py,
`EngineAccess`) on every WMTS (KVP, REST), WMS, TMS and Tianditu request once it is valid, with
the layers it uses. nginx's cached-tile fast path gets the config of `write_nginx_key_conf`,
derived from the requirement of the routes that serve those URLs (rules.TILE_SURFACES): with
a key-checked requirement, a request that carries
a key (`tk` or `X-Api-Key`), and every request when the node requires keys for public layers,
makes an `auth_request` to the app's `/auth/check`; nginx caches that answer for a short time
(`AUTH_CACHE_SECONDS`), keyed by every input it passes to the app (key, layer, client IP, Host,
Origin, the origin part of Referer, Authorization, Cookie; not `Accept`, which decides nothing
for a tile), so an answer for one caller is never reused for another. Allowed: the tile is sent from disk; denied (401/403, or a
429 that nginx turns into 500): the app's OGC exception for that answer is sent.
Keyless public requests keep the static fast path (no subrequest to the app).

Usage: requests allowed from nginx's cache are not seen by the app; nginx logs their key to
`nginx/logs/keys-usage.log` and `fold_nginx_usage` adds them to the key counters (see
services/README.md, "API keys behind nginx").
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from starlette.routing import Route

from services.access import rules
from services.access.fastpath import MAX_CASES, RATE_CLASSES, RATE_EXCEEDED, fast_dir, reset
from services.access.require import Requirement, route_for
from services.errors import AuthError
from tiles import nginx
from tiles.service import tile_route_paths

AUTH_CACHE_SECONDS = 30
USAGE_LOG = "keys-usage.log"
FOLD_SECONDS = 5.0
_ROTATED_SETTLE = 2.0  # nginx reopens its logs on USR1 within this time


def nginx_http_conf(prefix: Path) -> str:
    """http level: the auth answer cache, the Referer's origin, the usage log format, the
    learned key cases and their rate classes (services/access/fastpath.py)."""
    return nginx.render("keys_http.conf.j2", map_hash_max=2 * MAX_CASES,
                        auth_cache=prefix / "tmp" / "auth-cache",
                        fast_dir=fast_dir(prefix.parent), rate_classes=RATE_CLASSES)


def nginx_server_conf() -> str:
    """server level: the internal location `auth_request` asks (the app's /auth/check through
    the cache), and where a denial goes: the app's error document for it (usually from the
    cache too; a 429, which nginx turns into 500 and never caches, is asked again), and the
    answer to a learned key over its rate."""
    return nginx.render("keys_server.conf.j2", auth_cache_seconds=AUTH_CACHE_SECONDS,
                        rate_exceeded=RATE_EXCEEDED)


# one URI of each kind of cached-tile location of tiles/frontdoor.py (REST, TMS, KVP, Tianditu):
# they share the one include below, so the routes serving them must share one requirement
FAST_PATH_URIS = ("/wmts/vec/c/1/0/0.png", "/tms/1.0.0/vec/c/1/0/0.png", "/wmts", "/vec_c/wmts")


async def _nothing(request: Any) -> None:  # a stand-in endpoint: routes built only to match
    return None


def fast_path_requirement() -> Requirement:
    """The requirement of the app routes that serve nginx's cached-tile locations."""
    routes = [Route(p, _nothing) for p in tile_route_paths()]
    found = set()
    for uri in FAST_PATH_URIS:
        route = route_for(routes, uri)
        if route is None:
            raise LookupError(f"no tile route serves {uri}")
        found.add(rules.TILE_SURFACES[route.path])  # type: ignore[attr-defined]
    if len(found) != 1:
        raise ValueError(f"the cached-tile locations have different requirements: {found}")
    return found.pop()


def nginx_key_conf(public_requires_key: bool, log: Path | None = None) -> str:
    """The `tiles-auth.d/keys.conf` include of the node's tile locations: which requests ask
    the app follows from the requirement of the routes serving them (public: none)."""
    need = fast_path_requirement().nginx_need(public_requires_key)
    # one of three fixed forms: every request asks the app, keyed ones only, or none
    form = {"1": "all", '"$arg_tk$http_x_api_key"': "keyed", None: "none"}[need]
    return nginx.render("keys_location.conf.j2", need=form, rate_classes=RATE_CLASSES,
                        usage_log=log)


def write_nginx_key_conf(node_dir: Path, public_requires_key: bool) -> Path:
    prefix = node_dir / "nginx"
    for sub in ("tiles-auth.d", "http.d", "server.d", "logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "http.d" / "keys.conf").write_text(nginx_http_conf(prefix), encoding="utf-8")
    (prefix / "server.d" / "keys.conf").write_text(nginx_server_conf(), encoding="utf-8")
    reset(node_dir)  # nothing learned yet
    path = prefix / "tiles-auth.d" / "keys.conf"
    path.write_text(nginx_key_conf(public_requires_key, prefix / "logs" / USAGE_LOG),
                    encoding="utf-8")
    return path


# --- usage of keyed tiles nginx sent on a cached allow ----------------------------------------

def take_nginx_usage(node_dir: Path) -> Counter:
    """Key values (as the app reads them) -> requests, from nginx's usage log; each line once.

    The log is rotated (renamed, nginx told to reopen with USR1) and the rotated file is read
    on a later call, once nginx surely writes to the new one; a lock file serialises the app's
    workers.
    """
    logs = node_dir / "nginx" / "logs"
    log, rotated = logs / USAGE_LOG, logs / (USAGE_LOG + ".1")
    counts: Counter = Counter()
    if not log.exists() and not rotated.exists():
        return counts
    with open(logs / (USAGE_LOG + ".lock"), "a+", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        try:
            rotated_at = float(lock.read().strip() or 0)
        except ValueError:
            rotated_at = 0.0
        if rotated.exists():
            if time.time() - rotated_at < _ROTATED_SETTLE:
                return counts
            for line in rotated.read_text(encoding="utf-8", errors="replace").splitlines():
                tk, _, header = line.partition("\t")
                value = unquote_plus(tk) if tk not in ("", "-") else \
                    (header if header not in ("", "-") else "")
                if value:
                    counts[value] += 1
            rotated.unlink()
        if log.exists() and log.stat().st_size > 0:
            pid_file = node_dir / "nginx" / "nginx.pid"
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                return counts
            os.rename(log, rotated)
            lock.seek(0)
            lock.truncate()
            lock.write(str(time.time()))
            lock.flush()
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
    return counts


_last_fold = 0.0


async def fold_nginx_usage(keys: Any, node_dir: Path | None = None, *, force: bool = False) -> int:
    """Add the keyed tiles nginx sent on a cached allow to the key usage counters of `keys`
    (a `services.access.apikeys.KeyChecker`), at most every FOLD_SECONDS; returns requests folded."""
    global _last_fold
    import anyio

    now = time.monotonic()
    if keys is None or (not force and now - _last_fold < FOLD_SECONDS):
        return 0
    _last_fold = now
    if node_dir is None:
        return 0
    counts = await anyio.to_thread.run_sync(take_nginx_usage, node_dir)
    folded = 0
    for value, n in counts.items():
        try:
            key = await keys.key(value)
        except AuthError:  # main node unreachable: these requests stay uncounted
            continue
        if key is None:
            continue
        keys.add_usage(key.key_id, "tiles", n)
        folded += n
    return folded
