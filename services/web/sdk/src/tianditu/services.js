/**
 * T.Geocoder, T.AdministrativeDivision and T.DrivingRoute.
 *
 * T.Geocoder (lvzhao1995/tianditu-types `src/service/geocoder.d.ts`; Tianditu's examples
 * "地理编码" / "逆地理编码": `geocoder.getPoint(address, cb)` then `result.getStatus() == 0`,
 * `result.getLocationPoint()`, else `alert(result.getMsg())`; `geocoder.getLocation(lnglat, cb)`
 * then `result.getAddress()`, `result.getAddressComponent().city`):
 * - getPoint: `/geocoder?ds={"keyWord":address}&tk=KEY` (geocodinginterface.html);
 * - getLocation: `/geocoder?postStr={"lon":x,"lat":y,"ver":1}&type=geocode&tk=KEY`
 *   (geocoding.html).
 * `location.lon/lat` become numbers (the typings' `number`; the service sends strings).
 *
 * T.AdministrativeDivision (`search(config, cb)` with `{searchWord, searchType, needSubInfo,
 * needAll, needPolygon, needPre}`, then `result.getStatus() == 100` and `result.getData()`, whose
 * `data[i].points[j].region` is "x y,x y,..." and `lnt`/`lat` the centre: the form of every
 * public caller) sends that config as the legacy `/administrative?postStr=` of the V1 service,
 * whose answer (`returncode` "100", `data[]`) is that result; `/v2/administrative` has neither
 * `points` nor `lnt`.
 *
 * T.DrivingRoute: src/tianditu/driving.js (the node's `/drive`, Tianditu's XML answer).
 */

import { LngLat, fmt, toLngLat } from "./base.js";
import { getJSON, report } from "./http.js";

export const MAX_ADDRESS = 100;

/** The `ds` of a geocode (pure). */
export function geocodeDs(address) {
  const s = String(address ?? "").trim();
  if (!s) throw new TypeError("T.Geocoder.getPoint: the address is empty");
  if (s.length > MAX_ADDRESS) throw new RangeError(`T.Geocoder.getPoint: the address is over ${MAX_ADDRESS} characters`);
  return JSON.stringify({ keyWord: s });
}

/** The `postStr` of a reverse geocode (pure). */
export function reversePostStr(lnglat) {
  const p = toLngLat(lnglat);
  if (Math.abs(p.lng) > 180 || Math.abs(p.lat) > 90) throw new RangeError("T.Geocoder.getLocation: the point is out of range");
  return `{"lon":${fmt(p.lng)},"lat":${fmt(p.lat)},"ver":1}`;
}

function statusOf(v, fallback) {
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

export class GeocoderPointResult {
  constructor(body) {
    const b = body && typeof body === "object" ? body : {};
    this.status = String(b.status ?? "404");
    this.msg = String(b.msg ?? "");
    const loc = b.location;
    this.location = loc && typeof loc === "object"
      ? { ...loc, lon: Number(loc.lon), lat: Number(loc.lat), score: Number(loc.score) }
      : undefined;
  }

  getStatus() { return statusOf(this.status, 404); }

  getMsg() { return this.msg; }

  getLocationPoint() {
    const l = this.location;
    return l && Number.isFinite(l.lon) && Number.isFinite(l.lat) ? new LngLat(l.lon, l.lat) : undefined;
  }

  getLocationLevel() { return this.location ? this.location.level : undefined; }
}

export class GeocoderLocationResult {
  constructor(body) {
    const b = body && typeof body === "object" ? body : {};
    const r = b.result && typeof b.result === "object" ? b.result : {};
    this.status = String(b.status ?? "404");
    this.msg = String(b.msg ?? "");
    this.formatted_address = r.formatted_address ?? null;
    this.addressComponent = r.addressComponent || undefined;
    this.location = r.location ? { lon: Number(r.location.lon), lat: Number(r.location.lat) } : undefined;
  }

  getStatus() { return statusOf(this.status, 404); }

  getMsg() { return this.msg; }

  getLocationPoint() {
    const l = this.location;
    return l && Number.isFinite(l.lon) && Number.isFinite(l.lat) ? new LngLat(l.lon, l.lat) : undefined;
  }

  getAddress() { return this.formatted_address; }

  /** The component fields themselves (`.city`, `.road`...), and `.addressComponent` as the
   * typings also have it. */
  getAddressComponent() {
    if (!this.addressComponent) return undefined;
    return { ...this.addressComponent, addressComponent: this.addressComponent };
  }
}

function failure(err) {
  return { status: "404", msg: String((err && err.message) || "error") };
}

function call(fn, result) {
  if (typeof fn === "function") fn(result);
}

export class Geocoder {
  getPoint(address, callback) {
    const ds = geocodeDs(address);
    getJSON("/geocoder", { ds }).then(
      (body) => call(callback, new GeocoderPointResult(body)),
      (err) => { report("Geocoder", err); call(callback, new GeocoderPointResult(failure(err))); },
    );
  }

  getLocation(lnglat, callback) {
    const postStr = reversePostStr(lnglat);
    getJSON("/geocoder", { postStr, type: "geocode" }).then(
      (body) => call(callback, new GeocoderLocationResult(body)),
      (err) => { report("Geocoder", err); call(callback, new GeocoderLocationResult(failure(err))); },
    );
  }
}

/** The legacy `/administrative` postStr of a T.AdministrativeDivision config (pure). */
export function adminPostStr(config) {
  const c = config && typeof config === "object" ? config : {};
  const word = String(c.searchWord ?? "").trim();
  if (!word) throw new TypeError("T.AdministrativeDivision.search: searchWord is empty");
  if (word.length > 50) throw new RangeError("T.AdministrativeDivision.search: searchWord is too long");
  const type = String(c.searchType ?? "1");
  if (type !== "0" && type !== "1") throw new RangeError("T.AdministrativeDivision.search: searchType is 0 (code) or 1 (name)");
  const flag = (v) => String(v === true || v === "true" || v === 1 || v === "1");
  return JSON.stringify({
    searchWord: word, searchType: type, needSubInfo: flag(c.needSubInfo), needAll: flag(c.needAll),
    needPolygon: flag(c.needPolygon), needPre: flag(c.needPre),
  });
}

export class AdministrativeDivisionResult {
  constructor(body) {
    const b = body && typeof body === "object" ? body : {};
    this.returncode = String(b.returncode ?? "101");
    this.msg = String(b.msg ?? "");
    this.dataversion = b.dataversion;
    this.data = Array.isArray(b.data) ? b.data : [];
  }

  getStatus() { return statusOf(this.returncode, 101); }

  getMsg() { return this.msg; }

  getData() { return this.data; }

  getDataversion() { return this.dataversion; }
}

export class AdministrativeDivision {
  search(config, callback) {
    const postStr = adminPostStr(config);
    getJSON("/administrative", { postStr }).then(
      (body) => call(callback, new AdministrativeDivisionResult(body)),
      (err) => {
        report("AdministrativeDivision", err);
        call(callback, new AdministrativeDivisionResult({ returncode: "101", msg: String(err.message) }));
      },
    );
  }
}

export { DrivingRoute, DrivingRouteResult } from "./driving.js";
