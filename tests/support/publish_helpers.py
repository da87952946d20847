"""Shared helpers of the publishing tests: node contexts, generated files, reading back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import requests
from sso_client import bearer, login_pkce
from waiting import wait_for

from geoplat_settings import NodeRuntime
from nodes.publishing import publish_context
from nodes.pygeoapi_config import node_dir
from services.sso import accounts


def sign_in_users(main_db, main_url: str, prefix: str, users: dict[str, list[str]],
                  password: str) -> dict[str, dict[str, str]]:
    """Create `<prefix>_<name>` users with their roles; bearer headers by name."""
    out = {}
    for name, roles in users.items():
        accounts.create(main_db, f"{prefix}_{name}", password, roles=roles)
        out[name] = bearer(login_pkce(main_url, f"{prefix}_{name}", password))
    return out


def ctx_of(settings, node_id: str):
    node = settings.node(node_id)
    ndir = node_dir(settings, node)
    return publish_context(NodeRuntime.load(ndir), ndir)


def served(base: str, name: str, headers: dict | None = None) -> bool:
    r = requests.get(f"{base}/ogc/collections/{name}?f=json", headers=headers or {}, timeout=10)
    return r.status_code == 200


def items(base: str, name: str, headers: dict | None = None, limit: int = 1000) -> list[dict]:
    r = requests.get(f"{base}/ogc/collections/{name}/items?f=json&limit={limit}",
                     headers=headers or {}, timeout=30)
    r.raise_for_status()
    return r.json()["features"]


def read_gdal(base: str, name: str):
    """The collection read back by GDAL's OGC API Features driver (pyogrio)."""
    import pyogrio

    return pyogrio.read_dataframe(f"OAPIF:{base}/ogc/collections/{name}")


def scalar(dsn: str, query: str, args: tuple = ()) -> object:
    """The first column of the first row of a query on a node's database."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchone()[0]
    finally:
        conn.close()


def tables_like(dsn: str, pattern: str) -> list[str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT relname FROM pg_class WHERE relname LIKE %s AND relkind IN ('r', 'v')"
                        " ORDER BY 1", (pattern,))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def zip_dir(files: list[Path], out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
    return out


def points_frame(n: int = 20, seed: int = 1, x0: float = 120.10, y0: float = 30.20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = ["西湖", "灵隐寺", "断桥", "雷峰塔", "钱塘江", "拱宸桥", "河坊街", "六和塔"]
    return pd.DataFrame({
        "名称": [f"{names[i % len(names)]}{i}" for i in range(n)],
        "code": np.arange(n, dtype="int64"),
        "area": rng.uniform(1, 100, n).round(3),
        "lon": x0 + rng.uniform(0, 0.05, n),
        "lat": y0 + rng.uniform(0, 0.05, n),
    })


def work_dir_empty(ctx) -> bool:
    root = ctx.work_root
    return not root.exists() or not any(root.iterdir())


def every_worker(url: str, workers: int, read, headers: dict | None = None,
                 timeout: float = 60.0) -> dict[str, object]:
    """`read(response)` from each worker of a node (named by `X-Geoplat-Worker` or the JSON
    `worker` of /health). nginx keeps upstream connections alive, so sequential requests may
    all reach one worker: requests go in concurrent batches until every worker has answered."""
    from concurrent.futures import ThreadPoolExecutor

    seen: dict[str, object] = {}

    def one(_: int) -> requests.Response:
        return requests.get(url, headers=headers or {}, timeout=30)

    def batch(pool: ThreadPoolExecutor) -> bool:
        for r in pool.map(one, range(8)):
            if r.status_code == 429:  # a key's rate limit (50/s in the demo): not yet
                continue
            assert r.status_code in (200, 503), (r.status_code, r.text[:200])
            worker = r.headers.get("X-Geoplat-Worker") or r.json().get("worker")
            assert worker, "the answer names the worker"
            seen.setdefault(worker, read(r))
        return len(seen) >= workers

    # batches of 8 at the poll interval stay under a key's rate limit
    with ThreadPoolExecutor(8) as pool:
        wait_for(lambda: batch(pool), timeout, f"every worker answers {url}", ignore=())
    return seen
