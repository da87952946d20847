"""`python -m services.analysis.launch NODE_DIR -- CMD...`: start the node's analysis pool
(services/analysis/pool.py) in this process group, wait for its Redis, then become CMD (the
node's web server), so that the supervisor's process group holds both."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from geoplat_settings import NodeRuntime
from services.analysis.pool import redis_ready
from services.analysis.queue import redis_socket


def main(argv: list[str]) -> None:
    sep = argv.index("--")
    node_dir, cmd = Path(argv[0]).resolve(), argv[sep + 1:]
    runtime = NodeRuntime.load(node_dir)
    if runtime.analysis.workers or not runtime.analysis.redis_url:
        pool = subprocess.Popen([sys.executable, "-m", "services.analysis.pool", str(node_dir)],
                                stdin=subprocess.DEVNULL)
        if not runtime.analysis.redis_url:
            deadline = time.monotonic() + 20
            sock = redis_socket(node_dir)
            while not redis_ready(sock) and time.monotonic() < deadline and pool.poll() is None:
                time.sleep(0.05)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
