"""Generating a node's pygeoapi configuration and OpenAPI document from our settings.

The files are written under `var/nodes/<id>/` and never edited by hand. Admin API and
transactions stay off: no resource is `editable`, `server.admin` is false.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from geoplat_settings import Providers
from nodes.settings import FederationSettings, LayerSettings, NodeSettings
from services.analysis.config import manager_config, process_resources
from services.registry.local import CATALOGUE, catalogue_resource

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
STORAGE_CRS = EPSG.format(4490)
SUPPORTED_CRS = [CRS84, EPSG.format(4490), EPSG.format(4326), EPSG.format(3857)]
FEATURE_PROVIDER = "nodes.providers.features.PostGISFeatureProvider"
MVT_PROVIDER = "nodes.providers.mvt.PostGISMVTProvider"
# what layers/serving.py configures published layers with (written into the node's runtime)
PROVIDERS = Providers(feature=FEATURE_PROVIDER, tile=MVT_PROVIDER,
                      coverage="nodes.providers.coverage.COGProvider")


def node_dir(settings: FederationSettings, node: NodeSettings) -> Path:
    return settings.resolve(settings.var_dir) / "nodes" / node.id


def catalogue(dsn: str) -> dict[str, tuple[list[float], dict[str, str]]]:
    """(bbox, {column: original attribute name}) per loaded layer, from the node's
    `geoplat_layers` catalogue, in one read ({} before anything was loaded)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_layers')")
            if cur.fetchone()[0] is None:
                return {}
            cur.execute("SELECT id, bbox, columns FROM geoplat_layers")
            return {lid: ([float(v) for v in bbox], {c: str(t) for c, t in (cols or {}).items()})
                    for lid, bbox, cols in cur.fetchall()}
    finally:
        conn.close()


def _resource(layer: LayerSettings, dsn: str, bbox: list[float], node: NodeSettings,
              titles: dict[str, str] | None = None) -> dict[str, Any]:
    common: dict[str, Any] = {"data": {"dsn": dsn}, "table": layer.id, "id_field": "fid",
                              "geom_field": "geom"}
    if layer.field_access:  # attributes stricter than the layer (services/access/fields.py)
        common["field_access"] = dict(layer.field_access)
    feature: dict[str, Any] = {"type": "feature", "name": FEATURE_PROVIDER, **common,
                               "storage_crs": STORAGE_CRS, "crs": SUPPORTED_CRS}
    if layer.label_field:
        feature["title_field"] = layer.label_field
    if titles:  # original attribute names: titles in queryables and schema
        feature["titles"] = titles
    keywords = list(layer.keywords) + (["synthetic"] if layer.synthetic else [])
    description = layer.description or layer.title
    if layer.synthetic:
        description += " (synthetic demonstration data / 合成示例数据)"
    return {
        "type": "collection",
        "title": layer.title,
        "description": description,
        "keywords": keywords or [layer.id],
        "links": [],
        "extents": {"spatial": {"bbox": bbox, "crs": CRS84}},
        "providers": [
            feature,
            {
                "type": "tile",
                "name": MVT_PROVIDER,
                **common,
                "options": {
                    "zoom": {"min": layer.min_zoom, "max": layer.max_zoom},
                    "schemes": ["WebMercatorQuad"],
                    "max_features": 5000,
                },
                "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
            },
        ],
    }


def build_config(settings: FederationSettings, node: NodeSettings, layers: list[LayerSettings],
                 dsn: str, templates: dict[str, str] | None = None) -> dict[str, Any]:
    """The pygeoapi config dict for one node; only layers that are loaded are published."""
    loaded = catalogue(dsn)
    server: dict[str, Any] = {
        "bind": {"host": node.host, "port": node.port},
        "url": node.base_url + "/ogc",
        "mimetype": "application/json; charset=UTF-8",
        "encoding": "utf-8",
        "languages": ["en-US"],
        "cors": True,
        "pretty_print": False,
        "admin": False,
        "limits": {"default_items": 10, "max_items": settings.max_items_limit, "on_exceed": "error"},
        # The HTML map's base layer comes from the federation itself, never from the internet.
        "map": {"url": node.base_url + "/ogc/static/img/blank-tile.png",
                "attribution": node.title},
    }
    if templates:
        server["templates"] = templates
    # OGC API Processes on the node's queue (services/analysis, issue 17)
    server["manager"] = manager_config(dsn, node_dir(settings, node))
    return {
        "server": server,
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": node.title,
                "description": f"{node.title}: OGC API Features, Tiles and Records over PostGIS "
                               f"(tier {node.tier}, scale 1:{node.scale.finest}-1:{node.scale.coarsest})",
                "keywords": ["geoplat", "地理信息公共服务平台", node.tier, node.id],
                "keywords_type": "theme",
                "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                "url": node.base_url,
            },
            "license": {"name": "Sample data: see data-samples/SOURCES.md (demonstration only)",
                        "url": node.base_url + "/ogc"},
            "provider": {"name": node.title, "url": node.base_url},
            "contact": {"name": "geoplat operator", "position": "operator",
                        "address": "-", "city": "-", "stateorprovince": "-", "postalcode": "-",
                        "country": "CN", "phone": "-", "fax": "-", "email": "-", "url": node.base_url,
                        "hours": "-", "instructions": "-", "role": "pointOfContact"},
        },
        "resources": {
            layer.id: _resource(layer, dsn, loaded[layer.id][0], node, loaded[layer.id][1])
            for layer in layers if layer.id in loaded
        } | _catalogue(node, dsn) | process_resources(),
    }


def _catalogue(node: NodeSettings, dsn: str) -> dict[str, Any]:
    """The registry's OGC API Records collection (services/registry, issue 5)."""
    return {CATALOGUE: catalogue_resource(node, dsn)}


def write_config(config: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Validate with pygeoapi's own schema, write config and OpenAPI, return both paths."""
    from pygeoapi.config import validate_config
    from pygeoapi.openapi import get_oas

    validate_config(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path, oas_path = out_dir / "pygeoapi.yml", out_dir / "openapi.yml"
    tmp = cfg_path.with_suffix(".yml.tmp")
    tmp.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    os.chmod(tmp, 0o600)  # holds the database password
    tmp.replace(cfg_path)
    oas = get_oas(config)
    tmp = oas_path.with_suffix(".yml.tmp")
    tmp.write_text(yaml.safe_dump(oas, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(oas_path)
    return cfg_path, oas_path
