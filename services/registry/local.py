"""The node's own services as registry records (source `local`), kept equal to what it serves.

`sync_local_services` is called when a node is built and after every publish, rollback or
retire: it adds what is new, updates what changed and retires what is gone, writing outbox
entries in the same transaction so the parent hears of every change.

With `registry.review_published`, the records of published layers (`geoplat_published`) start
as pending: they reach the catalogue and the parent once a node admin approves them
(services/registry/review.py `decide`); a later publish keeps the decision.
"""

from __future__ import annotations

from typing import Any

from geoplat_settings import (
    EMAP_LAYERS,
    FederationSettings,
    NodeRuntime,
    NodeSettings,
    ServerSection,
)
from services.db import Database
from services.registry.db import COLUMNS, ensure_schema, outbox_add, record_of, write_record
from tiles.mapproxy_config import TITLES

CATALOGUE = "catalogue"
RECORD_PROVIDER = "services.registry.provider.RegistryRecordProvider"
COMPARED = ("type", "url", "title", "description", "keywords", "bbox", "scale", "access",
            "layer_id", "status", "origin_path")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def origin_path(settings: FederationSettings, node: NodeSettings) -> str:
    """`national/zhejiang/hangzhou`: the node's ancestors and itself."""
    chain = [node.id]
    cur = node
    while cur.parent:
        cur = settings.node(cur.parent)
        chain.append(cur.id)
    return "/".join(reversed(chain))


def catalogue_resource(node: NodeSettings, dsn: str) -> dict[str, Any]:
    """The pygeoapi collection `catalogue` (itemType record) served by our provider."""
    return {
        "type": "collection",
        "title": f"{node.title}: service catalogue 服务目录",
        "description": "Services registered in this node's part of the federation "
                       "(OGC API Records; q, bbox, type, datetime).",
        "keywords": ["catalogue", "registry", "服务目录"],
        "links": [],
        "extents": {"spatial": {"bbox": node.extent.as_list(), "crs": CRS84}},
        "providers": [{"type": "record", "name": RECORD_PROVIDER, "data": dsn, "id_field": "id",
                       "time_field": "updated", "title_field": "title", "node_id": node.id}],
    }


def _rec(node: ServerSection, path: str, rid: str, stype: str, url: str, title: str, *,
         description: str = "", keywords: list[str] | None = None, bbox: list[float] | None = None,
         access: str = "public", layer_id: str | None = None) -> dict[str, Any]:
    return {"id": rid, "origin_node": node.id, "origin_path": path, "type": stype, "url": url,
            "title": title, "description": description, "keywords": list(keywords or []),
            "bbox": [round(float(v), 7) for v in bbox] if bbox else None,
            "scale": {"finest": node.scale.finest, "coarsest": node.scale.coarsest},
            "access": access, "layer_id": layer_id, "status": "approved"}


def desired_records(runtime: NodeRuntime, pygeoapi_config: dict[str, Any],
                    levels: dict[str, str]) -> list[dict[str, Any]]:
    """Every service this node serves, as records."""
    node = runtime.server
    nid, base = node.id, node.base_url.rstrip("/")
    path = runtime.registry.path
    extent = node.extent.as_list()
    out = [_rec(node, path, f"{nid}:node", "node", base, node.title, bbox=extent,
                description=f"geoplat node {nid} (tier {node.tier})",
                keywords=["node", node.tier])]
    for cid, res in (pygeoapi_config.get("resources") or {}).items():
        if res.get("type") != "collection":
            continue
        kinds = {p.get("type") for p in res.get("providers", [])}
        bbox = ((res.get("extents") or {}).get("spatial") or {}).get("bbox") or extent
        if bbox and isinstance(bbox[0], list):
            bbox = bbox[0]
        common = {"description": str(res.get("description") or ""),
                  "keywords": [str(k) for k in res.get("keywords") or []], "bbox": bbox,
                  "access": levels.get(cid, "public"), "layer_id": cid}
        title = str(res.get("title") or cid)
        if "feature" in kinds:
            out.append(_rec(node, path, f"{nid}:features:{cid}", "OGCAPI-Features",
                            f"{base}/ogc/collections/{cid}", title, **common))
        if "tile" in kinds:
            out.append(_rec(node, path, f"{nid}:tiles:{cid}", "OGCAPI-Tiles",
                            f"{base}/ogc/collections/{cid}/tiles", title + " (vector tiles)",
                            **common))
        if "record" in kinds:
            out.append(_rec(node, path, f"{nid}:records:{cid}", "OGCAPI-Records",
                            f"{base}/ogc/collections/{cid}", title, **common))
    # the e-map layers and the composite layers (registry settings), each as WMTS and WMS
    maps = [(lid, TITLES.get(lid, lid), ["e-map", "政务电子地图", lid], "government e-map")
            for lid in EMAP_LAYERS]
    maps += [(c.id, c.title, ["composite", "组合服务", c.id], "composite")
             for c in runtime.compositions]
    for lid, name, kw, what in maps:
        title = f"{name} ({node.title})"
        for stype, url in (("WMTS", f"{base}/wmts/1.0.0/WMTSCapabilities.xml"),
                           ("WMS", f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0")):
            out.append(_rec(node, path, f"{nid}:{stype.lower()}:{lid}", stype, url, title,
                            keywords=kw, bbox=extent, layer_id=lid,
                            description=f"{what} {stype} layer"))
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in COMPARED)


def _published_layers(cur: Any) -> set[str]:
    cur.execute("SELECT to_regclass('public.geoplat_published')")
    if cur.fetchone()["to_regclass"] is None:
        return set()
    cur.execute("SELECT name FROM geoplat_published WHERE current_version IS NOT NULL")
    return {r["name"] for r in cur.fetchall()}


def sync_local_services(runtime: NodeRuntime, pygeoapi_config: dict,
                        levels: dict[str, str]) -> None:
    """Make the node's own (source=local) records match what it serves; idempotent."""
    ensure_schema(runtime.dsn)
    desired = {r["id"]: r for r in desired_records(runtime, pygeoapi_config, levels)}
    node = runtime.server
    upward = node.parent is not None
    review = runtime.registry.settings.review_published
    db = Database(runtime.dsn, maxconn=1)
    try:
        with db.transaction() as cur:
            # one sync at a time per node (publishing may run while the node starts)
            cur.execute("SELECT pg_advisory_xact_lock(4244)")
            cur.execute(f"SELECT {COLUMNS} FROM registry.services WHERE source = 'local' "
                        "AND origin_node = %s FOR UPDATE", (node.id,))
            current = {r["id"]: record_of(r) for r in cur.fetchall()}
            reviewed = _published_layers(cur) if review else set()
            changed = []
            for rid, rec in desired.items():
                old = current.get(rid)
                if rec["layer_id"] in reviewed:  # a node admin decides; later publishes keep it
                    keep = old is not None and old["status"] != "retired"
                    rec = {**rec, "status": old["status"] if old is not None and keep
                           else "pending"}
                if old is not None and _same(old, rec):
                    continue
                rec = {**rec, "version": (old["version"] + 1) if old else 1}
                changed.append(rec)
            for rid, old in current.items():
                if rid not in desired and old["status"] != "retired":
                    changed.append({**old, "status": "retired", "version": old["version"] + 1,
                                    "updated": None})
            for rec in changed:
                write_record(cur, rec, "local")
                if upward and rec["status"] in ("approved", "retired"):  # no undecided ones
                    cur.execute(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s",
                                (rec["id"],))
                    outbox_add(cur, "upsert", rec["id"], record_of(cur.fetchone()))
    finally:
        db.close()
