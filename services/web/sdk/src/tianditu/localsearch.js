/**
 * T.LocalSearch (lvzhao1995/tianditu-types `src/service/localSearch.d.ts`; called as Tianditu's
 * example "地名搜索" does: `new T.LocalSearch(map, {pageCapacity: 10, onSearchComplete})`, then
 * `search(keyword)` / `search(keyword, 7)`, `searchNearby(keyword, center, radius)`, the result's
 * `getResultType()` switch over `getPois()` / `getStatistics()` / `getArea()` / `getSuggests()` /
 * `getLineData()` and `getPrompt()`, and `getCountNumber()` / `getCountPage()` /
 * `getPageIndex()` with `firstPage()` / `previousPage()` / `nextPage()` / `lastPage()` /
 * `gotoPage(n)`, pages counted from 1).
 *
 * Requests go to the node's `/v2/search?postStr={JSON}&type=query&tk=KEY` (search2.html):
 * JS API type 1 and 7 are the same queryType with the map's `mapBound` and `level`; 2 (the view)
 * is queryType 2; 10 (a box) is queryType 2 over the box; `searchInBounds` is queryType 2 over
 * the bounds; `searchNearby` queryType 3 with `pointLonlat` and `queryRadius` (metres, at most
 * 10 km); `setSpecifyAdminCode(code)` adds `specify` to types 1 and 7. Suggestions (type 4, and
 * 5, Tianditu's bus-plan suggestions: the node has no bus data) come from the node's type-ahead
 * `/api/places/suggest?q=` (names, addresses, also pinyin initials), given as `suggests`
 * ({name, address, gbCode}) of a resultType 4 answer. The answer is passed on as the service gives it (POI
 * `lonlat` "x,y", as the example splits it with `split(",")`); `prompt[].admins[]` also get the
 * `name` the example reads beside the service's `adminName`.
 */

import { LngLat, LngLatBounds, fmt, num } from "./base.js";
import { getJSON, report } from "./http.js";

export const MAX_CAPACITY = 300; // Tianditu's `count` limit
export const MAX_START = 300;
export const MAX_TOTAL = 500; // start + count
export const MAX_RADIUS = 10000; // metres
export const MAX_KEYWORD = 100;
export const MAX_SUGGEST = 100; // the node's /api/places limit
const JS_TYPES = [1, 2, 4, 5, 7, 10];

function keyword(kw) {
  const s = String(kw ?? "").trim();
  if (!s) throw new TypeError("T.LocalSearch: the keyword is empty");
  if (s.length > MAX_KEYWORD) throw new RangeError(`T.LocalSearch: the keyword is over ${MAX_KEYWORD} characters`);
  return s;
}

/** The view of a T.Map as `mapBound` and `level`, or {} without a map. */
function viewOf(map) {
  if (!map || typeof map.getBounds !== "function") return {};
  const b = map.getBounds();
  const out = {};
  if (b && b.isValid && b.isValid()) out.mapBound = clampBound(b).toBBoxString();
  const z = typeof map.getZoom === "function" ? map.getZoom() : undefined;
  if (Number.isFinite(z)) out.level = Math.min(18, Math.max(1, Math.round(z)));
  return out;
}

function clampBound(b) {
  const sw = b.getSouthWest();
  const ne = b.getNorthEast();
  return new LngLatBounds(
    new LngLat(Math.max(-180, sw.lng), Math.max(-90, sw.lat)),
    new LngLat(Math.min(180, ne.lng), Math.min(90, ne.lat)),
  );
}

/**
 * The `/v2/search` postStr of one search (pure; exported for the tests).
 * @param {object} q {kind: "search"|"bounds"|"nearby", keyword, type, bounds, center, radius}
 * @param {object} st {map, capacity, page (from 1), specify}
 */
export function searchPostStr(q, st) {
  const kw = keyword(q.keyword);
  const capacity = st.capacity;
  const start = Math.min(MAX_START, (st.page - 1) * capacity);
  const count = Math.max(1, Math.min(capacity, MAX_TOTAL - start));
  const post = { keyWord: kw };
  if (q.kind === "nearby") {
    const c = q.center instanceof LngLat ? q.center : new LngLat(q.center.lng, q.center.lat);
    const r = num(q.radius, "T.LocalSearch radius");
    if (!(r > 0 && r <= MAX_RADIUS)) throw new RangeError(`T.LocalSearch: the radius is 1-${MAX_RADIUS} metres`);
    Object.assign(post, { queryType: 3, pointLonlat: `${fmt(c.lng)},${fmt(c.lat)}`, queryRadius: String(Math.round(r)) });
  } else if (q.kind === "bounds") {
    if (!(q.bounds instanceof LngLatBounds) || !q.bounds.isValid()) throw new TypeError("T.LocalSearch.searchInBounds: expected a T.LngLatBounds");
    const v = viewOf(st.map);
    Object.assign(post, { queryType: 2, mapBound: clampBound(q.bounds).toBBoxString(), level: v.level ?? 12 });
  } else {
    const type = q.type;
    const v = viewOf(st.map);
    if (type === 2 || type === 10) {
      if (!v.mapBound) throw new Error("T.LocalSearch: a view search needs the map's bounds");
      Object.assign(post, { queryType: 2, mapBound: v.mapBound, level: v.level ?? 12 });
    } else {
      Object.assign(post, { queryType: type === 7 ? 7 : 1, ...v });
      if (st.specify) post.specify = st.specify;
    }
  }
  post.start = start;
  post.count = count;
  return post;
}

/** The `/api/places/suggest` parameters of a type 4 or 5 search (pure). */
export function suggestParams(kw, capacity) {
  return { q: keyword(kw), limit: Math.min(MAX_SUGGEST, Math.max(1, capacity)) };
}

/** A resultType 4 answer from the node's suggestions (GeoJSON features; pure). */
export function suggestBody(fc, kw) {
  const features = fc && Array.isArray(fc.features) ? fc.features : [];
  const suggests = features.map((f) => {
    const p = (f && f.properties) || {};
    const a = p.admin || {};
    const code = a.township_code || a.county_code || a.city_code || a.province_code || "";
    return { name: String(p.name ?? ""), address: String(p.address ?? ""), gbCode: code ? `156${code}` : "" };
  });
  return { resultType: 4, count: String(suggests.length), keyWord: kw, suggests,
    status: { infocode: 1000, cndesc: "服务正常" } }; // none found: count "0", as Tianditu's empty answer
}

/** The JS API's query type from `search(kw, type)`: 1, 2, 4, 5, 7 or 10 (strings too). */
export function jsType(type, fallback) {
  if (type === undefined || type === null || type === "") return fallback;
  const t = Number(type);
  if (!JS_TYPES.includes(t)) throw new RangeError(`T.LocalSearch: the type is one of ${JS_TYPES.join(", ")}`);
  return t;
}

function adminsWithName(prompts) {
  if (!Array.isArray(prompts)) return prompts;
  return prompts.map((p) => ({
    ...p,
    admins: Array.isArray(p.admins)
      ? p.admins.map((a) => ({ name: a.adminName, ...a }))
      : p.admins,
  }));
}

/** The object `onSearchComplete` receives (pure: built from the service's answer). */
export class LocalSearchResult {
  constructor(body, { keyword: kw = "", jsType: t = 1 } = {}) {
    const b = body && typeof body === "object" ? body : {};
    const status = b.status && typeof b.status === "object" ? b.status : {};
    this.status = { infocode: Number(status.infocode ?? 3000), cndesc: String(status.cndesc ?? "") };
    this.keyWord = String(b.keyWord ?? kw);
    this.KeyWord = this.keyWord;
    this.count = Number(b.count ?? 0) || 0;
    let rt = Number(b.resultType ?? 1) || 1;
    this.pois = Array.isArray(b.pois) ? b.pois : undefined;
    this.statistics = b.statistics || undefined;
    this.area = b.area || undefined;
    this.prompt = adminsWithName(b.prompt) || undefined;
    this.lineData = Array.isArray(b.lineData) ? b.lineData : undefined;
    this.suggests = Array.isArray(b.suggests) ? b.suggests : undefined;
    if ((t === 4 || t === 5) && rt === 1) {
      rt = 4;
      this.suggests = (this.pois || []).map((p) => ({ name: p.name, address: p.address, gbCode: p.countyCode || p.cityCode || "" }));
      this.pois = undefined;
    }
    this.resultType = rt;
  }

  getResultType() { return this.resultType; }

  getCount() { return this.count; }

  getKeyword() { return this.keyWord; }

  getPois() { return this.pois; }

  getStatistics() { return this.statistics; }

  getArea() { return this.area; }

  getSuggests() { return this.suggests; }

  getPrompt() { return this.prompt; }

  getLineData() { return this.lineData; }

  /** Not in Tianditu's typings: the service's `status.infocode` (1000 OK) and `cndesc`. */
  getStatus() { return this.status.infocode; }

  getMsg() { return this.status.cndesc; }
}

/** The result for a request that failed (network, key, quota): infocode 3000 and why. */
function failed(err, kw, t) {
  const r = new LocalSearchResult({ count: "0", resultType: 1, keyWord: kw, status: { infocode: 3000, cndesc: "" } }, { keyword: kw, jsType: t });
  r.status.cndesc = String((err && err.message) || "error");
  r.httpStatus = (err && err.status) || 0;
  return r;
}

export class LocalSearch {
  /**
   * @param {object} map a T.Map (its view bounds and level go into type 1, 2, 7 searches)
   * @param {{pageCapacity?: number, onSearchComplete?: Function}} [opts]
   */
  constructor(map, opts = {}) {
    this._map = map || null;
    this._capacity = 10;
    this.setPageCapacity(opts.pageCapacity ?? 10);
    this._onComplete = typeof opts.onSearchComplete === "function" ? opts.onSearchComplete : null;
    this._queryType = 1;
    this._specify = null;
    this._last = null;
    this._page = 1;
    this._result = null;
    this._seq = 0;
  }

  search(kw, type) {
    this._run({ kind: "search", keyword: kw, type: jsType(type, this._queryType) }, 1);
  }

  searchInBounds(kw, bounds) {
    this._run({ kind: "bounds", keyword: kw, bounds, type: 2 }, 1);
  }

  searchNearby(kw, center, radius) {
    this._run({ kind: "nearby", keyword: kw, center, radius, type: 1 }, 1);
  }

  getResults() { return this._result; }

  clearResults() {
    this._result = null;
    this._last = null;
    this._page = 1;
  }

  gotoPage(page) {
    if (!this._last) return;
    const n = Math.round(Number(page));
    if (!Number.isFinite(n)) return;
    this._run(this._last, Math.min(Math.max(1, n), this.getCountPage() || 1));
  }

  firstPage() { this.gotoPage(1); }

  nextPage() { this.gotoPage(this._page + 1); }

  previousPage() { this.gotoPage(this._page - 1); }

  prevPage() { this.previousPage(); }

  lastPage() { this.gotoPage(this.getCountPage()); }

  /** `code`: a 9-digit Tianditu code (156330100), our 6-digit one, or a division's name. */
  setSpecifyAdminCode(code) {
    const s = String(code ?? "").trim();
    if (s.length > 50) throw new RangeError("T.LocalSearch: the admin code is too long");
    this._specify = s || null;
  }

  getSpecifyAdminCode() { return this._specify; }

  setQueryType(type) { this._queryType = jsType(type, 1); }

  getQueryType() { return this._queryType; }

  setPageCapacity(count) {
    const n = Math.round(Number(count));
    this._capacity = Number.isFinite(n) ? Math.min(MAX_CAPACITY, Math.max(1, n)) : 10;
  }

  getPageCapacity() { return this._capacity; }

  setSearchCompleteCallback(fn) { this._onComplete = typeof fn === "function" ? fn : null; }

  /** Total records of the last search. */
  getCountNumber() { return this._result ? this._result.getCount() : 0; }

  /** Pages of the last search (reachable ones: Tianditu serves start + count <= 500). */
  getCountPage() {
    const total = Math.min(this.getCountNumber(), MAX_START + this._capacity);
    return Math.ceil(total / this._capacity);
  }

  getPageIndex() { return this._page; }

  _run(q, page) {
    const post = searchPostStr(q, { map: this._map, capacity: this._capacity, page, specify: this._specify });
    const seq = ++this._seq;
    this._last = q;
    this._page = page;
    const kw = post.keyWord;
    const suggest = q.kind === "search" && (q.type === 4 || q.type === 5);
    const request = suggest
      ? getJSON("/api/places/suggest", suggestParams(kw, this._capacity)).then((fc) => suggestBody(fc, kw))
      : getJSON("/v2/search", { postStr: JSON.stringify(post), type: "query" });
    request.then(
      (body) => new LocalSearchResult(body, { keyword: kw, jsType: q.type }),
      (err) => { report("LocalSearch", err); return failed(err, kw, q.type); },
    ).then((result) => {
      if (seq !== this._seq) return; // a newer search was started
      this._result = result;
      if (this._onComplete) this._onComplete.call(this, result);
    });
  }
}
