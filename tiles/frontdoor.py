"""The node's front door: nginx on the public host:port, cached tiles straight from disk.

nginx (Debian `nginx-light`) runs from `var/nodes/<id>/nginx/` with its own config, pid, logs
and temp dirs (`-p` prefix, `daemon off`), in the node's process group, so stopping the group
stops it. Tile URLs whose file exists in the MapProxy cache (WMTS REST and KVP GetTile, TMS,
Tianditu `/{layer}_{c|w}/wmts?...`) are sent with sendfile; misses and every other path go to the node's
app on a unix socket. Access checks for tiles go in `nginx/tiles-auth.d/*.conf` (included in
every tile location, e.g. an `auth_request`), so a key check keeps the static fast path; what
those need at http and server level (cache zones, maps, internal locations) goes in
`nginx/http.d/*.conf` and `nginx/server.d/*.conf`. The config is rendered from
tiles/templates/nginx.conf.j2 (tiles/nginx.py quotes or refuses every value put in it).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from geoplat_settings import EMAP_LAYERS
from tiles import nginx
from tiles.errors import nginx_exception_xml, ogc_code_for
from tiles.grids import MAX_LEVEL

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_JPEG = ("img", "ter")  # layer formats as in config/styles/emap.yml
_PNG = tuple(lay for lay in EMAP_LAYERS if lay not in _JPEG)
_OGC_400 = nginx_exception_xml(ogc_code_for(400), "Invalid request.")
_LEVELS = tuple(range(MAX_LEVEL, 0, -1))


@dataclass(frozen=True)
class FrontDoor:
    """Where the node's app listens behind nginx, and how nginx is run."""

    node_dir: Path
    host: str
    port: int

    @property
    def prefix(self) -> Path:
        return self.node_dir / "nginx"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def socket(self) -> Path:
        """The app's unix socket, in a directory only we can enter (uvicorn makes it 0666)."""
        path = self.node_dir / "run" / "app.sock"
        if len(str(path)) >= 100:  # AF_UNIX paths are limited to 107 bytes
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
            path = Path("/tmp") / f"geoplat-{digest}" / "app.sock"
        return path

    @staticmethod
    def available() -> bool:
        return os.access(NGINX, os.X_OK)

    def app_args(self) -> list[str]:
        """uvicorn arguments to listen where nginx forwards to.

        Only nginx can reach the socket, so its X-Forwarded-For (set to the peer address, never
        passed through from the client) is trusted: the app sees real client IPs.
        """
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.socket.parent, 0o700)
        return ["--uds", str(self.socket), "--proxy-headers", "--forwarded-allow-ips", "*"]

    def write_config(self, cache_dir: Path, *, fast_path: bool = True) -> Path:
        """Write nginx.conf; without `fast_path` (tiles not on disk) everything is proxied."""
        for d in ("logs", "tmp", "tiles-auth.d", "http.d", "server.d"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(render_config(self, cache_dir, fast_path), encoding="utf-8")
        return self.conf

    def wrap(self, app_cmd: list[str]) -> list[str]:
        """A command that starts nginx in the background and then becomes the app (exec):
        both share the new session and process group the supervisor creates and stops."""
        nginx = [NGINX, "-p", str(self.prefix), "-c", str(self.conf),
                 "-e", str(self.prefix / "logs" / "error.log")]
        script = " ".join(shlex.quote(a) for a in nginx) + ' & exec "$@"'
        return ["/bin/sh", "-c", script, "geoplat-node", *app_cmd]


def render_config(fd: FrontDoor, cache_dir: Path, fast_path: bool = True) -> str:
    """nginx.conf of the node (tiles/templates/nginx.conf.j2)."""
    return nginx.render("nginx.conf.j2", prefix=fd.prefix, socket=fd.socket, host=fd.host,
                        port=fd.port, cache_dir=cache_dir, fast_path=fast_path,
                        layers=EMAP_LAYERS, png=_PNG, jpeg=_JPEG, levels=_LEVELS,
                        ogc_400=_OGC_400)
