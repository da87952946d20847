"""The `geoplat` CLI as a user drives it: up in the foreground then Ctrl-C, --detach/status/down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from waiting import wait_for

from nodes import settings as settings_mod

ROOT = Path(__file__).resolve().parents[2]


def geoplat(config: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli", "--config", str(config), *args],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=240,
                          **kw)


def our_processes(marker: str) -> list[int]:
    """PIDs whose environment mentions `marker` (the test's private var dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in env and b"nodes.asgi" in cmd:
            found.append(int(entry.name))
    return found


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 180) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not seen; output: {''.join(lines)}")


def test_up_then_ctrl_c_leaves_nothing_running(tmp_path: Path, pg_cluster, make_federation) -> None:
    config = make_federation(tmp_path, pg_cluster)
    s = settings_mod.load(config)
    marker = str(s.resolve(s.var_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodes.cli", "--config", str(config), "up"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = wait_for_line(proc, "press Ctrl-C")
        for node in s.nodes:
            assert any(node.base_url in line for line in out), out
            assert requests.get(node.base_url + "/health", timeout=5).json()["status"] == "ok"
        assert our_processes(marker), "node processes not found"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: our_processes(marker) == [], 10, "every node process gone")
    for node in s.nodes:
        try:
            requests.get(node.base_url + "/health", timeout=2)
            raise AssertionError(f"{node.id} still answers")
        except requests.ConnectionError:
            pass
    # the cluster was running before `up`: it is left running
    assert pg_cluster.is_running()


def test_detach_status_down_and_fast_second_start(tmp_path: Path, pg_cluster, make_federation) -> None:
    config = make_federation(tmp_path, pg_cluster)
    t0 = time.monotonic()
    res = geoplat(config, "up", "--detach", "--node", "national")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all nodes healthy" in res.stdout
    try:
        st = geoplat(config, "status")
        rows = {line.split()[0]: line.split()[2] for line in st.stdout.splitlines() if line.strip()}
        assert rows["national"] == "ok" and rows["hangzhou"] == "stopped"
        assert st.returncode == 1  # not every node is up
        again = geoplat(config, "up", "--detach", "--node", "national")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = geoplat(config, "down", "--keep-db")
    assert down.returncode == 0
    s = settings_mod.load(config)
    assert our_processes(str(s.resolve(s.var_dir))) == []
    st = geoplat(config, "status")
    assert "stopped" in st.stdout and st.returncode == 1
    # data was loaded by an earlier start: this one reuses it
    assert time.monotonic() - t0 < 120


def test_load_is_idempotent(tmp_path: Path, pg_cluster, make_federation) -> None:
    config = make_federation(tmp_path, pg_cluster)
    first = geoplat(config, "load", "--node", "hangzhou")
    second = geoplat(config, "load", "--node", "hangzhou")
    assert first.returncode == 0 and second.returncode == 0
    assert "poi:" in second.stdout and "unchanged" in second.stdout
    assert "loaded" not in second.stdout
