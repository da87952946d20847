/**
 * T.Polyline, T.Polygon, T.Rectangle, T.Circle (lvzhao1995/tianditu-types
 * `src/overlay/polyline.d.ts`, `polygon.d.ts`, `rectangle.d.ts`, `circle.d.ts`): features of
 * one vector layer per T.Map, styled from the typed options (defaults: color "#0000FF",
 * weight 3, opacity 0.5, fillColor "#0000FF", fillOpacity 0.2, lineStyle "solid"; "dashed"
 * dashes). A circle's radius is in metres on the ground: it is drawn as a 64-sided geodesic
 * polygon, right in both grids.
 */

import Collection from "ol/Collection.js";
import Feature from "ol/Feature.js";
import { asArray } from "ol/color.js";
import LineString from "ol/geom/LineString.js";
import Polygon, { circular } from "ol/geom/Polygon.js";
import Modify from "ol/interaction/Modify.js";
import { Fill, Stroke, Style } from "ol/style.js";

import { LngLat, LngLatBounds, num, toLngLat } from "./base.js";
import { OverlayBase, TYPES } from "./overlay.js";

export const MAX_POINTS = 100000;

function lnglats(points, what) {
  if (!Array.isArray(points)) throw new TypeError(`${what}: expected an array of T.LngLat`);
  if (points.length > MAX_POINTS) throw new RangeError(`${what}: more than ${MAX_POINTS} points`);
  return points.map((p) => toLngLat(p));
}

function rgba(color, opacity) {
  let c;
  try {
    c = asArray(color).slice();
  } catch {
    c = [0, 0, 255, 1];
  }
  c[3] = (c[3] ?? 1) * opacity;
  return c;
}

/** Options shared by the four, with Tianditu's defaults. */
function styleOptions(opts, fill) {
  const o = {
    color: opts.color ?? "#0000FF",
    weight: opts.weight ?? 3,
    opacity: opts.opacity ?? 0.5,
    lineStyle: opts.lineStyle === "dashed" ? "dashed" : "solid",
  };
  if (fill) {
    o.fillColor = opts.fillColor ?? "#0000FF";
    o.fillOpacity = opts.fillOpacity ?? 0.2;
  }
  return o;
}

class VectorOverlay extends OverlayBase {
  constructor(opts, fill) {
    super(opts);
    this._s = styleOptions(this.options, fill);
    this._opacity = 1;
    this._feature = new Feature();
    this._feature.set("tdtOverlay", this);
    this._modify = null;
    this._editable = false;
  }

  setColor(color) { this._s.color = String(color); this._render(); }

  getColor() { return this._s.color; }

  setWeight(weight) { this._s.weight = num(weight, "weight"); this._render(); }

  getWeight() { return this._s.weight; }

  setOpacity(opacity) { this._s.opacity = Math.min(1, Math.max(0, num(opacity, "opacity"))); this._render(); }

  getOpacity() { return this._s.opacity; }

  setLineStyle(style) { this._s.lineStyle = style === "dashed" ? "dashed" : "solid"; this._render(); }

  getLineStyle() { return this._s.lineStyle; }

  enableEdit() {
    this._editable = true;
    this._syncEdit();
  }

  disableEdit() {
    this._editable = false;
    this._syncEdit();
  }

  isEditable() { return this._editable; }

  getBounds() {
    return new LngLatBounds(this._outline());
  }

  _outline() { return []; }

  _geometry() { return null; }

  /** Points read back from an edited geometry (in view coordinates). */
  _fromEdited() {}

  _add(map) {
    super._add(map);
    map._vectorSource().addFeature(this._feature);
    this._refresh();
    this._syncEdit();
  }

  _remove() {
    if (this._map) {
      this._editable && this._map._olMap.removeInteraction(this._modify);
      this._map._vectorSource().removeFeature(this._feature);
    }
    this._modify = null;
    this.fire("remove", {});
    super._remove();
  }

  _syncEdit() {
    if (!this._map) return;
    const olMap = this._map._olMap;
    if (this._editable && !this._modify) {
      this._modify = new Modify({ features: new Collection([this._feature]) });
      this._modify.on("modifyend", () => {
        this._fromEdited(this._feature.getGeometry());
        this.fire("edit", {});
      });
      olMap.addInteraction(this._modify);
    } else if (!this._editable && this._modify) {
      olMap.removeInteraction(this._modify);
      this._modify = null;
    }
  }

  _refresh() {
    if (this._map) this._feature.setGeometry(this._geometry());
    this._render();
  }

  _render() {
    const s = this._s;
    if (this._hidden) {
      this._feature.setStyle(new Style({}));
      return;
    }
    const stroke = new Stroke({
      color: rgba(s.color, s.opacity),
      width: s.weight,
      lineDash: s.lineStyle === "dashed" ? [s.weight * 3, s.weight * 2] : undefined,
    });
    const fill = s.fillColor !== undefined
      ? new Fill({ color: rgba(s.fillColor === "" ? s.color : s.fillColor, s.fillOpacity) })
      : undefined;
    this._feature.setStyle(new Style({ stroke, fill, zIndex: this._zIndex }));
  }

  _eventLngLat() { return this.getBounds().getCenter(); }
}

class PathOverlay extends VectorOverlay {
  constructor(points, opts, fill, what) {
    super(opts, fill);
    this._what = what;
    this._points = lnglats(points || [], what);
  }

  setLngLats(points) {
    this._points = lnglats(points, this._what);
    this._refresh();
  }

  getLngLats() { return this._points.slice(); }

  _outline() { return this._points; }

  _eventLngLat() { return this._points.slice(); }

  _infoAnchor() { return { lnglat: this.getBounds().getCenter(), offset: [0, 0] }; }
}

export class Polyline extends PathOverlay {
  constructor(points, opts = {}) {
    super(points, opts, false, "T.Polyline");
  }

  getType() { return TYPES.polyline; }

  _geometry() {
    return new LineString(this._points.map((p) => this._map._toView(p)));
  }

  _fromEdited(geom) {
    this._points = geom.getCoordinates().map((c) => this._map._fromView(c));
  }
}

export class Polygon_ extends PathOverlay {
  constructor(points, opts = {}) {
    super(points, opts, true, "T.Polygon");
  }

  getType() { return TYPES.polygon; }

  setFillColor(color) { this._s.fillColor = String(color); this._render(); }

  getFillColor() { return this._s.fillColor; }

  setFillOpacity(opacity) { this._s.fillOpacity = Math.min(1, Math.max(0, num(opacity, "fillOpacity"))); this._render(); }

  getFillOpacity() { return this._s.fillOpacity; }

  _geometry() {
    const ring = this._points.map((p) => this._map._toView(p));
    if (ring.length && (ring[0][0] !== ring[ring.length - 1][0] || ring[0][1] !== ring[ring.length - 1][1])) ring.push(ring[0]);
    return new Polygon([ring]);
  }

  _fromEdited(geom) {
    const ring = geom.getCoordinates()[0] || [];
    this._points = ring.slice(0, -1).map((c) => this._map._fromView(c));
  }
}

export class Rectangle extends VectorOverlay {
  constructor(bounds, opts = {}) {
    super(opts, true);
    this.setBounds(bounds);
  }

  getType() { return TYPES.rectangle; }

  setBounds(bounds) {
    if (!(bounds instanceof LngLatBounds) || !bounds.isValid()) throw new TypeError("T.Rectangle: expected a T.LngLatBounds");
    this._bounds = new LngLatBounds(bounds.getSouthWest(), bounds.getNorthEast());
    this._refresh();
  }

  getBounds() { return this._bounds; }

  setFillColor(color) { this._s.fillColor = String(color); this._render(); }

  getFillColor() { return this._s.fillColor; }

  setFillOpacity(opacity) { this._s.fillOpacity = Math.min(1, Math.max(0, num(opacity, "fillOpacity"))); this._render(); }

  getFillOpacity() { return this._s.fillOpacity; }

  _outline() { return [this._bounds.getSouthWest(), this._bounds.getNorthEast()]; }

  _geometry() {
    const b = this._bounds;
    const pts = [b.getSouthWest(), b.getSouthEast(), b.getNorthEast(), b.getNorthWest(), b.getSouthWest()];
    return new Polygon([pts.map((p) => this._map._toView(p))]);
  }

  _fromEdited(geom) {
    this._bounds = new LngLatBounds((geom.getCoordinates()[0] || []).map((c) => this._map._fromView(c)));
  }

  _eventLngLat() { return this._bounds; }

  _infoAnchor() { return { lnglat: this._bounds.getCenter(), offset: [0, 0] }; }
}

export class Circle extends VectorOverlay {
  /**
   * @param {LngLat} center
   * @param {number} radius metres
   */
  constructor(center, radius, opts = {}) {
    super(opts, true);
    this._center = toLngLat(center);
    this._radius = Math.max(0, num(radius, "T.Circle radius"));
  }

  getType() { return TYPES.circle; }

  setCenter(lnglat) { this._center = toLngLat(lnglat); this._refresh(); }

  getCenter() { return this._center; }

  setRadius(radius) { this._radius = Math.max(0, num(radius, "T.Circle radius")); this._refresh(); }

  getRadius() { return this._radius; }

  setFillColor(color) { this._s.fillColor = String(color); this._render(); }

  getFillColor() { return this._s.fillColor; }

  setFillOpacity(opacity) { this._s.fillOpacity = Math.min(1, Math.max(0, num(opacity, "fillOpacity"))); this._render(); }

  getFillOpacity() { return this._s.fillOpacity; }

  _ring() {
    return circular([this._center.lng, this._center.lat], this._radius || 0.01, 64).getCoordinates()[0];
  }

  _outline() { return this._ring().map((c) => new LngLat(c[0], c[1])); }

  _geometry() {
    return new Polygon([this._ring().map((c) => this._map._toView(c))]);
  }

  _fromEdited(geom) {
    // an edited circle keeps its shape: the new radius is the mean distance of the ring
    const ring = (geom.getCoordinates()[0] || []).map((c) => this._map._fromView(c));
    if (ring.length) this._radius = ring.reduce((s, p) => s + this._center.distanceTo(p), 0) / ring.length;
    this._refresh();
  }

  _eventLngLat() { return this._center; }

  _infoAnchor() { return { lnglat: this._center, offset: [0, 0] }; }
}

export { Polygon_ as Polygon };
