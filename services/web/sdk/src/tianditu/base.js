/**
 * T.LngLat, T.LngLatBounds, T.Point: Tianditu JS API 4.0's value classes (lvzhao1995/tianditu-types
 * `src/base.d.ts`). Tianditu 4.0 is built on Leaflet (its panes are `tdt-marker-pane`...), so
 * where the typings say nothing the behaviour is Leaflet's: coordinates given as strings are
 * coerced to numbers (`new T.LngLat(arr[0], arr[1])` after `lonlat.split(",")` is how Tianditu's
 * own examples build them), distances are on a sphere of 6,371,000 m.
 * Pure: no OpenLayers, no DOM.
 */

const EARTH_RADIUS = 6371000;
const MARGIN = 1.0e-9;

/** A number from a number or a numeric string; anything else is an error, never NaN. */
export function num(v, what) {
  const n = typeof v === "string" ? Number(v.trim()) : v;
  if (typeof n !== "number" || !Number.isFinite(n) || (typeof v === "string" && v.trim() === "")) {
    throw new TypeError(`${what}: not a number: ${String(v).slice(0, 40)}`);
  }
  return n;
}

export class LngLat {
  /**
   * @param {number|string} lng
   * @param {number|string} lat
   */
  constructor(lng, lat) {
    this.lng = num(lng, "T.LngLat lng");
    this.lat = num(lat, "T.LngLat lat");
  }

  getLng() { return this.lng; }

  getLat() { return this.lat; }

  /** Great-circle distance in metres (Leaflet's spherical formula). */
  distanceTo(other) {
    const o = toLngLat(other);
    const rad = Math.PI / 180;
    const lat1 = this.lat * rad;
    const lat2 = o.lat * rad;
    const sinDLat = Math.sin(((o.lat - this.lat) * rad) / 2);
    const sinDLon = Math.sin(((o.lng - this.lng) * rad) / 2);
    const a = sinDLat * sinDLat + Math.cos(lat1) * Math.cos(lat2) * sinDLon * sinDLon;
    return EARTH_RADIUS * 2 * Math.atan2(Math.sqrt(a), Math.sqrt(1 - a));
  }

  equals(other) {
    if (!other) return false;
    const o = toLngLat(other);
    return Math.max(Math.abs(this.lat - o.lat), Math.abs(this.lng - o.lng)) <= MARGIN;
  }

  clone() { return new LngLat(this.lng, this.lat); }

  toString() { return `LngLat(${this.lng}, ${this.lat})`; }
}

/** A T.LngLat from a T.LngLat, an [lng, lat] pair or a {lng, lat} object. */
export function toLngLat(v) {
  if (v instanceof LngLat) return v;
  if (Array.isArray(v) && v.length >= 2) return new LngLat(v[0], v[1]);
  if (v && typeof v === "object" && "lng" in v && "lat" in v) return new LngLat(v.lng, v.lat);
  throw new TypeError("expected a T.LngLat");
}

export class LngLatBounds {
  /**
   * `new T.LngLatBounds(sw, ne)`, `new T.LngLatBounds([lnglat, ...])`, or empty and `extend`ed.
   * @param {LngLat|LngLat[]} [sw]
   * @param {LngLat} [ne]
   */
  constructor(sw, ne) {
    this._sw = null;
    this._ne = null;
    if (!sw) return;
    const pts = ne ? [sw, ne] : sw;
    for (const p of pts) this.extend(p);
  }

  /** Grows to hold a point or another bounds; returns this. */
  extend(obj) {
    let sw;
    let ne;
    if (obj instanceof LngLatBounds) {
      if (!obj.isValid()) return this;
      sw = obj._sw;
      ne = obj._ne;
    } else {
      sw = ne = toLngLat(obj);
    }
    if (!this._sw) {
      this._sw = new LngLat(sw.lng, sw.lat);
      this._ne = new LngLat(ne.lng, ne.lat);
    } else {
      this._sw = new LngLat(Math.min(sw.lng, this._sw.lng), Math.min(sw.lat, this._sw.lat));
      this._ne = new LngLat(Math.max(ne.lng, this._ne.lng), Math.max(ne.lat, this._ne.lat));
    }
    return this;
  }

  isValid() { return !!(this._sw && this._ne); }

  getSouthWest() { return this._sw; }

  getNorthEast() { return this._ne; }

  getNorthWest() { return new LngLat(this.getWest(), this.getNorth()); }

  getSouthEast() { return new LngLat(this.getEast(), this.getSouth()); }

  getWest() { return this._sw.lng; }

  getSouth() { return this._sw.lat; }

  getEast() { return this._ne.lng; }

  getNorth() { return this._ne.lat; }

  getCenter() {
    return new LngLat((this._sw.lng + this._ne.lng) / 2, (this._sw.lat + this._ne.lat) / 2);
  }

  /** True when a point, or a whole bounds, lies inside (edges included). */
  contains(obj) {
    if (!this.isValid()) return false;
    let sw;
    let ne;
    if (obj instanceof LngLatBounds) {
      if (!obj.isValid()) return false;
      sw = obj._sw;
      ne = obj._ne;
    } else {
      sw = ne = toLngLat(obj);
    }
    return sw.lat >= this._sw.lat && ne.lat <= this._ne.lat &&
      sw.lng >= this._sw.lng && ne.lng <= this._ne.lng;
  }

  /** True when the two overlap or touch. */
  intersects(other) {
    if (!this.isValid() || !(other instanceof LngLatBounds) || !other.isValid()) return false;
    return other._ne.lat >= this._sw.lat && other._sw.lat <= this._ne.lat &&
      other._ne.lng >= this._sw.lng && other._sw.lng <= this._ne.lng;
  }

  equals(other) {
    return other instanceof LngLatBounds && this.isValid() && other.isValid() &&
      this._sw.equals(other._sw) && this._ne.equals(other._ne);
  }

  /** "minx,miny,maxx,maxy", the form of Tianditu's `mapBound`. */
  toBBoxString() {
    return [this.getWest(), this.getSouth(), this.getEast(), this.getNorth()].map(fmt).join(",");
  }

  toString() { return `LngLatBounds(${this._sw}, ${this._ne})`; }
}

export class Point {
  /**
   * A pixel position, x to the right, y down.
   * @param {number|string} x
   * @param {number|string} y
   */
  constructor(x, y) {
    this.x = num(x, "T.Point x");
    this.y = num(y, "T.Point y");
  }

  equals(p) { return !!p && p.x === this.x && p.y === this.y; }

  distanceTo(p) { return Math.hypot(p.x - this.x, p.y - this.y); }

  add(p) { return new Point(this.x + p.x, this.y + p.y); }

  subtract(p) { return new Point(this.x - p.x, this.y - p.y); }

  clone() { return new Point(this.x, this.y); }

  toString() { return `Point(${this.x}, ${this.y})`; }
}

/** A coordinate as Tianditu's services write it: at most 6 decimals, no exponent. */
export function fmt(v) {
  return String(Number(v.toFixed(6)));
}
