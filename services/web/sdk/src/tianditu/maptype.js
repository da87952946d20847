/**
 * Map types and projections. Pure.
 *
 * Tianditu's five map types are globals (`window.TMAP_NORMAL_MAP`...; lvzhao1995/tianditu-types
 * `src/index.d.ts` types them as `T.MapType`), and T.Control.MapType's default entries name them
 * 地图 / 卫星 / 卫星混合 / 地形 / 地形混合 (`src/control/mapType.d.ts`): vector with its labels,
 * imagery alone, imagery with labels, terrain alone, terrain with labels. Here each is the node's
 * government e-map layers: vec+cva, img, img+cia, ter, ter+cta.
 *
 * Projections (`T.MapOptions.projection`, `src/map.d.ts`): "EPSG:900913" (Web Mercator, the
 * default, our `w` grid) and "EPSG:4326" (our `c` grid, CGCS2000 EPSG:4490, which Tianditu's
 * `_c` services are; "EPSG:4490" is accepted as the same). Zoom levels are Tianditu's
 * TILEMATRIX numbers in both: level 1 is 0.703125 deg/px in `c`, 2x2 tiles in `w`.
 */

export class MapType {
  /**
   * @param {Array} layers T.TileLayer objects (a custom map type) or e-map layer names
   * @param {string} name
   */
  constructor(layers, name) {
    this._layers = Array.isArray(layers) ? layers.slice() : [];
    this._name = String(name ?? "");
  }

  getName() { return this._name; }

  getLayers() { return this._layers.slice(); }
}

/** e-map layer names of each built-in map type: [basemap, labels or null]. */
export const EMAP = {
  TMAP_NORMAL_MAP: ["vec", "cva", "地图"],
  TMAP_SATELLITE_MAP: ["img", null, "卫星"],
  TMAP_HYBRID_MAP: ["img", "cia", "卫星混合"],
  TMAP_TERRAIN_MAP: ["ter", null, "地形"],
  TMAP_TERRAIN_HYBRID_MAP: ["ter", "cta", "地形混合"],
};

/** The five constants, each a MapType whose layers are its e-map layer names. */
export function builtinMapTypes() {
  const out = {};
  for (const [id, [base, labels, title]] of Object.entries(EMAP)) {
    const t = new MapType(labels ? [base, labels] : [base], id);
    t._emap = { basemap: base, labels, title };
    out[id] = t;
  }
  return out;
}

/** {basemap, labels} of a map type, or null for a custom one (T.TileLayer objects). */
export function emapOf(mapType) {
  if (!(mapType instanceof MapType)) throw new TypeError("setMapType: expected a T.MapType (TMAP_NORMAL_MAP...)");
  return mapType._emap || null;
}

const PROJECTIONS = {
  "EPSG:900913": "w",
  "EPSG:3857": "w",
  "EPSG:102100": "w",
  "EPSG:4326": "c",
  "EPSG:4490": "c",
  "CRS:84": "c",
};

/** "c" or "w" for a T.Map `projection` option (default "EPSG:900913", as Tianditu's). */
export function gridOf(projection) {
  if (projection === undefined || projection === null || projection === "") return "w";
  const g = PROJECTIONS[String(projection).toUpperCase()];
  if (!g) throw new Error(`T.Map: projection is "EPSG:900913" or "EPSG:4326", not ${String(projection).slice(0, 30)}`);
  return g;
}

/** The code `map.getCode()` answers: Tianditu's two names. */
export function codeOf(grid) {
  return grid === "c" ? "EPSG:4326" : "EPSG:900913";
}

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 18;

/** A zoom level checked and clamped to [min, max]; strings are numbers (`"12"`). */
export function zoomLevel(z, min = MIN_ZOOM, max = MAX_ZOOM) {
  const n = typeof z === "string" ? Number(z) : z;
  if (typeof n !== "number" || !Number.isFinite(n)) throw new TypeError(`zoom: not a number: ${String(z).slice(0, 20)}`);
  return Math.min(max, Math.max(min, Math.round(n)));
}

/** Resolution of a level in each grid: `c` in degrees per pixel, `w` in metres per pixel. */
export function resolutionOf(grid, z) {
  return grid === "c" ? 1.40625 / 2 ** z : (2 * Math.PI * 6378137) / 256 / 2 ** z;
}

export const ANCHORS = {
  T_ANCHOR_TOP_LEFT: "topleft",
  T_ANCHOR_TOP_RIGHT: "topright",
  T_ANCHOR_BOTTOM_LEFT: "bottomleft",
  T_ANCHOR_BOTTOM_RIGHT: "bottomright",
};

export const DRIVING_POLICIES = {
  TMAP_DRIVING_POLICY_LEAST_TIME: 0,
  TMAP_DRIVING_POLICY_LEAST_DISTANCE: 1,
  TMAP_DRIVING_POLICY_AVOID_HIGHWAYS: 2,
  TMAP_DRIVING_POLICY_WALK: 3,
};

/** A T.TileLayer template URL for tile (z, x, y): `{z}`, `{x}`, `{y}`, and `{s}` over the
 * subdomains. */
export function tileUrl(template, z, x, y, subdomains) {
  const subs = subdomains && subdomains.length ? subdomains : ["0"];
  const s = subs[Math.abs(x + y) % subs.length];
  return template.replace(/\{z\}/g, String(z)).replace(/\{x\}/g, String(x))
    .replace(/\{y\}/g, String(y)).replace(/\{s\}/g, String(s));
}

/** The GetMap parameters of T.TileLayer.WMS options (defaults as Tianditu's: image/jpeg,
 * not transparent, 1.1.1). */
export function wmsParams(o) {
  if (!o || !o.layers) throw new TypeError("T.TileLayer.WMS: the layers option is missing");
  return {
    LAYERS: String(o.layers), STYLES: String(o.styles ?? ""), FORMAT: String(o.format ?? "image/jpeg"),
    TRANSPARENT: o.transparent === true || o.transparent === "true" ? "TRUE" : "FALSE",
    VERSION: String(o.version ?? "1.1.1"),
  };
}
