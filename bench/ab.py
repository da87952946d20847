"""This checkout against an earlier revision, side by side in one run: app-served requests/s and
the node's CPU per request, rounds interleaved (A B, B A, ...) so that the machine's drift
(other load, thermal, the neighbours of a VM) falls on both alike.

Run from the repository root:
    .venv/bin/python bench/ab.py REV [--case features|tiles|collections] [--rounds 8]

REV (a commit, tag or branch) is exported with `git archive` to a temporary directory; each
side starts its own private PostGIS and the demo's national and hangzhou nodes from its own
code (the older side through PYTHONPATH, which the node processes inherit, ahead of the
venv's editable install). Keys are optional on both (bench/auth.py's anonymous baseline).
Sequential runs of bench/auth.py minutes apart differed by up to 25 % on this 2-core machine
with nothing changed; interleaved rounds of the same code differ by a few per cent.
Prints the rounds and a summary, and appends the summary to bench/results/ab.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def bench_auth(root: Path):
    """`bench/auth.py` of a checkout (its `write_config`, `free_port`, `load`, `tile_urls`)."""
    spec = importlib.util.spec_from_file_location(f"bench_auth_{abs(hash(root))}",
                                                  root / "bench" / "auth.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def serve(root: Path, out: Path) -> None:
    """One side: the federation of `root`'s code until stdin closes (a child of `main`)."""
    sys.path.insert(0, str(root))
    b = bench_auth(root)
    import nodes
    from nodes import settings as settings_mod
    from nodes import supervisor
    from nodes.postgres import Cluster
    if not Path(nodes.__file__).resolve().is_relative_to(root):
        raise SystemExit(f"imported {nodes.__file__}, not the code of {root}")
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-ab-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=b.free_port(), fast=True)
    cluster.start()
    procs = []
    try:
        settings = settings_mod.load(b.write_config(base, cluster))
        procs, _ = supervisor.up(settings, only=["national", "hangzhou"], echo=lambda *a: None)
        pgid = next(p.pgid for p in procs if p.node.id == "hangzhou")
        out.write_text(json.dumps({"url": settings.node("hangzhou").base_url, "pgid": pgid}))
        sys.stdin.read()
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def cpu_seconds(pgid: int) -> float:
    """User + system CPU of the processes of a node's group (uvicorn workers, nginx)."""
    total = 0.0
    for pid in subprocess.run(["pgrep", "-g", str(pgid)], check=False, capture_output=True,
                              text=True).stdout.split():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def case_urls(b, case: str, base: str) -> list[str]:
    import httpx

    if case == "features":
        return [f"{base}/ogc/collections/poi/items/{i}?f=json" for i in range(1, 51)]
    if case == "collections":
        return [f"{base}/ogc/collections?f=json"]
    poi = httpx.get(f"{base}/ogc/collections/poi/items?f=json&limit=1", timeout=30)
    return b.tile_urls(base, "poi", *poi.json()["features"][0]["geometry"]["coordinates"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev", nargs="?")
    ap.add_argument("--case", choices=["features", "tiles", "collections"], default="features")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--serve", nargs=2, metavar=("ROOT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return 0
    if not args.rev:
        ap.error("name the revision to compare with")
    head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="geoplat-bench-ab-code-"))
    tmp.chmod(0o755)  # the node processes run as the geoplat user
    old_root = tmp / "code"
    old_root.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.rev],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_root)], input=archive, check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(old_root)], check=True)
    sides = {args.rev: old_root, head: ROOT}
    children: dict[str, tuple[subprocess.Popen, Path]] = {}
    b = bench_auth(ROOT)
    try:
        for name, root in sides.items():
            out = tmp / f"{len(children)}.json"
            env = dict(os.environ)
            if root != ROOT:
                env["PYTHONPATH"] = str(root)
            children[name] = (subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "ab.py"), "--serve", str(root), str(out)],
                stdin=subprocess.PIPE, env=env, cwd=root), out)
        info = {}
        for name, (proc, out) in children.items():
            deadline = time.monotonic() + 300
            while not out.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {name} side did not start")
                time.sleep(0.5)
            info[name] = json.loads(out.read_text())
        urls = {n: case_urls(b, args.case, i["url"]) for n, i in info.items()}
        for n in info:  # warm: pygeoapi's first answers, connection pools, caches
            asyncio.run(b.load(urls[n], {}, 3, args.concurrency))
        results: dict[str, list[tuple[float, float]]] = {n: [] for n in info}
        order = list(info)
        for r in range(args.rounds):
            for n in order if r % 2 == 0 else order[::-1]:
                cpu0, t0 = cpu_seconds(info[n]["pgid"]), time.perf_counter()
                rate, bad = asyncio.run(b.load(urls[n], {}, args.seconds, args.concurrency))
                if bad:
                    raise SystemExit(f"{bad} failed requests on the {n} side")
                ms = (cpu_seconds(info[n]["pgid"]) - cpu0) / (rate * (time.perf_counter() - t0))
                results[n].append((rate, ms * 1000))
                print(f"round {r + 1} {n:>12}: {rate:7.1f} req/s, node CPU {ms * 1000:.3f} "
                      "ms/request", flush=True)
        base_rate = statistics.median(x[0] for x in results[args.rev])
        base_cpu = statistics.median(x[1] for x in results[args.rev])
        lines = [(f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.case}, {args.rounds} "
                 f"interleaved rounds of {args.seconds:.0f} s, {args.concurrency} connections\n"),
                 ("| code | median req/s | best req/s | median node CPU ms/request | "
                 f"ratio to {args.rev} (req/s, CPU) |"), "|---|---:|---:|---:|---|"]
        for n, v in results.items():
            rate = statistics.median(x[0] for x in v)
            cpu = statistics.median(x[1] for x in v)
            lines.append(f"| {n} | {rate:.1f} | {max(x[0] for x in v):.1f} | {cpu:.3f} | "
                         f"{rate / base_rate:.3f}, {cpu / base_cpu:.3f} |")
        text = "\n".join(lines)
        print(text)
        out = ROOT / "bench" / "results" / "ab.md"
        with out.open("a", encoding="utf-8") as f:
            if f.tell() == 0:
                f.write("# bench/ab.py results\n")
            f.write(text + "\n")
        return 0
    finally:
        for proc, _ in children.values():
            if proc.stdin:
                proc.stdin.close()
        for proc, _ in children.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
