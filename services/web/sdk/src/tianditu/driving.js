/**
 * T.DrivingRoute over the node's Tianditu-compatible `/drive` (services/maps/drive.py):
 * `new T.DrivingRoute(map, {policy, onSearchComplete}).search(start, end)` sends
 * `/drive?postStr={"orig":"x,y","dest":"x,y","mid":"","style":"0|1|2|3"}&type=search&tk=KEY`
 * and reads Tianditu's XML answer into the result Tianditu's JS API gives its callback:
 * `result.getNumPlans()`, `result.getPlan(0)` with `getDistance()` (km), `getDuration()` (s),
 * `getPath()` (T.LngLat[] of `routelatlon`), `getNumRoutes()`/`getRoute(i)` (the `simple`
 * segments: `getNumSteps()`, `getStep(j)` with `getDescription()` (`strguide`) and
 * `getPosition()` (`turnlatlon`), `getDistance()` in metres), `getStart()`, `getEnd()`,
 * `getStatus()` (0 ok, else the answer's infocode, 3000 when the request failed), `getMsg()`.
 * Policy: TMAP_DRIVING_POLICY_LEAST_TIME 0, LEAST_DISTANCE 1, AVOID_HIGHWAYS 2 (and 3 walk).
 * The XML is parsed with the browser's DOMParser into a plain answer (`driveAnswer`), which
 * the result reads (pure, tested under node).
 */

import { LngLat, toLngLat } from "./base.js";
import { report, serviceUrl, MAX_URL } from "./http.js";

const POLICIES = new Set([0, 1, 2, 3]);

/** "x,y;x,y;" -> T.LngLat[] (the empty last element dropped, bad pairs skipped). */
export function lineOf(text) {
  const out = [];
  for (const pair of String(text || "").split(";")) {
    const [x, y] = pair.split(",").map(Number);
    if (pair.trim() && Number.isFinite(x) && Number.isFinite(y)) out.push(new LngLat(x, y));
  }
  return out;
}

/** The `postStr` of a driving route (pure). */
export function drivePostStr(start, end, policy = 0, mids = []) {
  const s = toLngLat(start);
  const e = toLngLat(end);
  const style = POLICIES.has(Number(policy)) ? String(Number(policy)) : "0";
  const mid = (mids || []).map((p) => { const m = toLngLat(p); return `${m.lng},${m.lat}`; });
  return JSON.stringify({ orig: `${s.lng},${s.lat}`, dest: `${e.lng},${e.lat}`,
    mid: mid.join(";"), style });
}

/** Tianditu's XML answer (a Document) -> a plain answer the result reads. */
export function driveAnswer(doc) {
  const text = (parent, tag) => {
    const el = parent && parent.getElementsByTagName(tag)[0];
    return el ? el.textContent : "";
  };
  const root = doc.documentElement;
  const items = (tag) => {
    const box = root.getElementsByTagName(tag)[0];
    return box ? Array.from(box.getElementsByTagName("item")) : [];
  };
  return {
    infocode: text(root, "infocode"), cndesc: text(root, "cndesc"),
    distance: text(root, "distance"), duration: text(root, "duration"),
    routelatlon: text(root, "routelatlon"),
    routes: items("routes").map((it) => ({ strguide: text(it, "strguide"),
      streetName: text(it, "streetName"), turnlatlon: text(it, "turnlatlon") })),
    simple: items("simple").map((it) => ({ strguide: text(it, "strguide"),
      streetNames: text(it, "streetNames"), turnlatlon: text(it, "turnlatlon"),
      streetLatLon: text(it, "streetLatLon"), streetDistance: text(it, "streetDistance"),
      segmentNumber: text(it, "segmentNumber") })),
  };
}

export class DrivingStep {
  constructor(item) { this._item = item; }

  getDescription() { return this._item.strguide; }

  getPosition() { return lineOf(this._item.turnlatlon)[0]; }
}

/** A segment of the plan (a `simple` item) with its turn-by-turn steps. */
export class DrivingSegment {
  constructor(item, steps) { this._item = item; this._steps = steps; }

  getNumSteps() { return this._steps.length; }

  getStep(i) { return this._steps[i]; }

  getDescription() { return this._item.strguide; }

  getDistance() { return Number(this._item.streetDistance) || 0; }

  getPath() { return lineOf(this._item.streetLatLon); }

  getStreetNames() { return this._item.streetNames; }
}

export class DrivingPlan {
  constructor(answer) {
    this._a = answer;
    const steps = answer.routes.map((r) => new DrivingStep(r));
    this._segments = answer.simple.map((s) => {
      const [a, b] = String(s.segmentNumber).split("-").map(Number);
      const last = Number.isInteger(b) ? b : a;
      return new DrivingSegment(s, Number.isInteger(a) ? steps.slice(a, last + 1) : []);
    });
  }

  /** km, as Tianditu's `distance`. */
  getDistance() { return Number(this._a.distance) || 0; }

  /** seconds. */
  getDuration() { return Number(this._a.duration) || 0; }

  getPath() { return lineOf(this._a.routelatlon); }

  getNumRoutes() { return this._segments.length; }

  getRoute(i) { return this._segments[i]; }
}

export class DrivingRouteResult {
  constructor(start, end, answer, status, msg) {
    this._start = start || undefined;
    this._end = end || undefined;
    const ok = answer && !answer.infocode && answer.routes.length > 0;
    this._plans = ok ? [new DrivingPlan(answer)] : [];
    this._status = status ?? (ok ? 0 : Number(answer && answer.infocode) || 3001);
    this._msg = msg ?? (ok ? "ok" : (answer && answer.cndesc) || "没有找到路线");
  }

  getStatus() { return this._status; }

  getMsg() { return this._msg; }

  getStart() { return this._start; }

  getEnd() { return this._end; }

  getNumPlans() { return this._plans.length; }

  getPlan(i) { return this._plans[i]; }
}

async function fetchDrive(postStr) {
  const url = serviceUrl("/drive", { postStr, type: "search" });
  if (url.length > MAX_URL) throw new Error("request too long");
  const r = await fetch(url, { credentials: "same-origin" });
  const body = await r.text();
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = JSON.parse(body).msg || JSON.parse(body).detail || detail; } catch { /* XML */ }
    throw Object.assign(new Error(`HTTP ${r.status}: ${detail}`), { status: r.status });
  }
  return driveAnswer(new DOMParser().parseFromString(body, "application/xml"));
}

export class DrivingRoute {
  constructor(map, opts = {}) {
    this._map = map || null;
    this._policy = Number(opts.policy ?? 0) || 0;
    this._onComplete = typeof opts.onSearchComplete === "function" ? opts.onSearchComplete : null;
    this._result = null;
  }

  /** Searches a route (`mids`: waypoints, at most 10 as /drive allows). */
  search(start, end, mids) {
    const s = toLngLat(start);
    const e = toLngLat(end);
    const postStr = drivePostStr(s, e, this._policy, mids);
    const done = (result) => {
      this._result = result;
      const fn = this._onComplete;
      if (fn) fn.call(this, result);
    };
    fetchDrive(postStr).then(
      (answer) => done(new DrivingRouteResult(s, e, answer)),
      (err) => {
        report("DrivingRoute", err);
        done(new DrivingRouteResult(s, e, null, 3000, String(err && err.message)));
      },
    );
  }

  getResults() { return this._result; }

  clearResults() { this._result = null; }

  setPolicy(policy) { this._policy = Number(policy) || 0; }

  getPolicy() { return this._policy; }

  setSearchCompleteCallback(fn) { this._onComplete = typeof fn === "function" ? fn : null; }
}
