"""The node's front door: nginx on the public host:port, cached tiles straight from disk.

nginx (Debian `nginx-light`) runs from `var/nodes/<id>/nginx/` with its own config, pid, logs
and temp dirs (`-p` prefix, `daemon off`), in the node's process group, so stopping the group
stops it. Tile URLs whose file exists in the MapProxy cache (WMTS REST and KVP GetTile, TMS,
Tianditu `/{layer}_{c|w}/wmts?...`) are sent with sendfile; misses and every other path go to the node's
app on a unix socket. Access checks for tiles go in `nginx/tiles-auth.d/*.conf` (included in
every tile location, e.g. an `auth_request`), so a key check keeps the static fast path; what
those need at http and server level (cache zones, maps, internal locations) goes in
`nginx/http.d/*.conf` and `nginx/server.d/*.conf`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from tiles.errors import nginx_exception_xml, ogc_code_for
from tiles.grids import MAX_LEVEL
from tiles.styles import EMAP_LAYERS

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_LAYERS = "|".join(EMAP_LAYERS)
_JPEG = "img|ter"  # layer formats as in config/styles/emap.yml
_PNG = "|".join(lay for lay in EMAP_LAYERS if lay not in _JPEG.split("|"))
_OGC_400 = nginx_exception_xml(ogc_code_for(400), "Invalid request.")
_LEVEL = "|".join(str(z) for z in range(MAX_LEVEL, 0, -1))


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
    tmp = fd.prefix / "tmp"
    auth = f"include {fd.prefix / 'tiles-auth.d'}/*.conf;"
    # A cache file is sent as is (one open, sendfile); a missing one (404) goes to the app.
    hit = ('add_header Cache-Control "public, max-age=3600"; add_header X-Tile-Cache hit; '
           "error_page 404 = @app; log_not_found off;")
    hit_kvp = hit.replace("@app", "@geoplat_app_original")
    tile_locations = f"""        # WMTS RESTful: /wmts/{{layer}}/{{grid}}/{{z}}/{{x}}/{{y}}.{{ext}}
        location ~ "^/wmts/(?<l>{_LAYERS})/(?<g>c|w)/0*(?<z>[0-9]{{1,2}})/(?<x>[0-9]{{1,9}})/(?<y>[0-9]{{1,9}})\\.(?<e>png|jpeg)$" {{
            {auth}
            {hit}
            alias {cache_dir}/${{l}}_${{g}}/${{g}}/${{z}}/${{x}}/${{y}}.${{e}};
        }}
        # TMS (origin nw, as configured): /tms/1.0.0/{{layer}}/{{grid}}/{{z}}/{{x}}/{{y}}.{{ext}}
        location ~ "^/tms/1\\.0\\.0/(?<l>{_LAYERS})/(?<g>c|w)/(?<z>[0-9]{{1,2}})/(?<x>[0-9]{{1,9}})/(?<y>[0-9]{{1,9}})\\.(?<e>png|jpeg)$" {{
            {auth}
            {hit}
            alias {cache_dir}/${{l}}_${{g}}/${{g}}/${{z}}/${{x}}/${{y}}.${{e}};
        }}
        # WMTS KVP GetTile (/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=..&FORMAT=..): a valid
        # tile address is looked up through the REST form's cache location (internal); anything
        # else, and misses, go to the app with the original URI
        location = /wmts {{
            if ($geoplat_kvp_tile) {{ rewrite ^ /__geoplat_kvp$geoplat_kvp_tile last; }}
            proxy_pass http://geoplat_app;
        }}
        location ~ "^/__geoplat_kvp/(?<l>{_LAYERS})/(?<g>c|w)/(?<z>[0-9]{{1,2}})/(?<x>[0-9]{{1,9}})/(?<y>[0-9]{{1,9}})\\.(?<e>png|jpeg)$" {{
            internal;
            {auth}
            {hit_kvp}
            alias {cache_dir}/${{l}}_${{g}}/${{g}}/${{z}}/${{x}}/${{y}}.${{e}};
        }}
        # Tianditu: /{{layer}}_{{c|w}}/wmts?SERVICE=WMTS&REQUEST=GetTile&...&TILEMATRIX=z&TILEROW=y&TILECOL=x&tk=
        # (the URI has no extension, so the type is set per location)
        location ~ "^/(?<tdt_layer>{_PNG})_(?<tdt_grid>c|w)/wmts$" {{
            {auth}
            {hit}
            types {{ }}
            default_type image/png;
            alias {cache_dir}/${{tdt_layer}}_${{tdt_grid}}/${{tdt_grid}}/${{tdt_z}}/${{tdt_x}}/${{tdt_y}}.png;
        }}
        location ~ "^/(?<tdt_layer>{_JPEG})_(?<tdt_grid>c|w)/wmts$" {{
            {auth}
            {hit}
            types {{ }}
            default_type image/jpeg;
            alias {cache_dir}/${{tdt_layer}}_${{tdt_grid}}/${{tdt_grid}}/${{tdt_z}}/${{tdt_x}}/${{tdt_y}}.jpeg;
        }}
""" if fast_path else ""
    return f"""# Generated by geoplat (tiles/frontdoor.py); do not edit.
daemon off;
# no `user`: master and workers run as the node's unprivileged user (nodes/privileges.py), who
# owns var/nodes/<id> and so reads the cache and the app's socket, and may reload this nginx
worker_processes 2;
pcre_jit on;
pid {fd.prefix / 'nginx.pid'};
error_log {fd.prefix / 'logs' / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    types {{ image/png png; image/jpeg jpeg jpg; application/xml xml; }}
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    # no open_file_cache: an invalidated tile must stop being served at once
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 10m;

    upstream geoplat_app {{ server unix:{fd.socket}; keepalive 32; }}
    include {fd.prefix / 'http.d'}/*.conf;

    # Tianditu KVP -> cache file parts; anything unusual leaves them empty (-> the app).
    map "$arg_request:$arg_tilematrix" $tdt_z {{ "~*^gettile:0*(?<tdtz>{_LEVEL})$" $tdtz; default "-"; }}
    map $arg_tilerow $tdt_y {{ "~^0*(?<tdty>[0-9]{{1,9}})$" $tdty; default "-"; }}
    map $arg_tilecol $tdt_x {{ "~^0*(?<tdtx>[0-9]{{1,9}})$" $tdtx; default "-"; }}
    # WMTS KVP GetTile -> the REST cache path "/layer/grid/z/x/y.ext", or "" (-> the app)
    map "$arg_service:$arg_layer" $kvp_l {{ "~*^(wmts)?:(?<kvpl>{_LAYERS})$" $kvpl; default "-"; }}
    map $arg_tilematrixset $kvp_g {{ "~^(?<kvpg>c|w)$" $kvpg; default "-"; }}
    map "$kvp_l:$arg_format" $kvp_e {{ "~^({_PNG}):image(/|%2[fF])png$" png; "~^({_JPEG}):image(/|%2[fF])jpeg$" jpeg; default "-"; }}
    map "/$kvp_l/$kvp_g/$tdt_z/$tdt_x/$tdt_y.$kvp_e" $geoplat_kvp_tile {{
        "~^(?<kvpt>/({_LAYERS})/[cw]/[0-9]+/[0-9]+/[0-9]+\\.(png|jpeg))$" $kvpt;
        default "";
    }}

    server {{
        listen {fd.host}:{fd.port};
        root {cache_dir};
        error_page 400 /__geoplat_400.xml;

        location = /__geoplat_400.xml {{
            internal;
            default_type application/xml;
            return 400 '{_OGC_400}';
        }}
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 180s;
        location @app {{ proxy_pass http://geoplat_app; }}
        # after an internal rewrite (WMTS KVP), the app gets the URI the client sent
        location @geoplat_app_original {{ proxy_pass http://geoplat_app$request_uri; }}
        location / {{ proxy_pass http://geoplat_app; }}
        # layer uploads stream to the app, which enforces the node's publish size limit while
        # reading them (413 problem+json); progress lines stream back as they come
        location = /api/layers {{
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_pass http://geoplat_app;
        }}
        include {fd.prefix / 'server.d'}/*.conf;
{tile_locations}    }}
}}
"""
