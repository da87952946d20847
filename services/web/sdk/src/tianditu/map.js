/**
 * T.Map (lvzhao1995/tianditu-types `src/map.d.ts`) on a Geoplat.Map: the node's e-map in the `c`
 * grid (`projection: "EPSG:4326"`, also "EPSG:4490") or the `w` grid ("EPSG:900913", Tianditu's
 * default), zoom levels numbered as Tianditu's (= the WMTS TILEMATRIX; the SDK's view has zoom n
 * = matrix level n, see its grid.js). Everything below `getLibMap()` is OpenLayers.
 *
 * Events carry Tianditu's objects: `click`/`dblclick`/`contextmenu`/`mousemove`/`mouseover`/
 * `mouseout` have `lnglat` (T.LngLat), `containerPoint` (T.Point), `type`, `target`; `movestart`,
 * `move`, `moveend`, `zoomstart`, `zoomend`, `dragstart`, `drag`, `dragend`, `load`, `resize`
 * (`newSize`, `oldSize`), `addoverlay`, `removeoverlay`, `clearoverlays`, `addcontrol`,
 * `removecontrol`, `layeradd`, `layerremove`, `levels`.
 */

import VectorLayer from "ol/layer/Vector.js";
import VectorSource from "ol/source/Vector.js";
import { fromLonLat, toLonLat } from "ol/proj.js";
import { boundingExtent, getCenter } from "ol/extent.js";
import DoubleClickZoom from "ol/interaction/DoubleClickZoom.js";
import DragPan from "ol/interaction/DragPan.js";
import KeyboardPan from "ol/interaction/KeyboardPan.js";
import KeyboardZoom from "ol/interaction/KeyboardZoom.js";
import MouseWheelZoom from "ol/interaction/MouseWheelZoom.js";
import PinchZoom from "ol/interaction/PinchZoom.js";

import { LngLat, LngLatBounds, Point, toLngLat } from "./base.js";
import { createCore } from "./core.js";
import { Evented } from "./events.js";
import { MapType, builtinMapTypes, codeOf, emapOf, gridOf, resolutionOf, zoomLevel, MAX_ZOOM, MIN_ZOOM } from "./maptype.js";
import { wireEvents } from "./mapevents.js";
import { injectCss, OverlayBase } from "./overlay.js";

const MAP_TYPES = builtinMapTypes();

export class TMap extends Evented {
  /**
   * @param {string|HTMLElement} container the element or its id
   * @param {{projection?: string, minZoom?: number, maxZoom?: number, maxBounds?: LngLatBounds,
   *   center?: LngLat, zoom?: number, layers?: Array}} [opts]
   */
  constructor(container, opts = {}) {
    super();
    const el = typeof container === "string" ? document.getElementById(container) : container;
    if (!el || el.nodeType !== 1) throw new Error(`T.Map: no element ${typeof container === "string" ? `#${container}` : ""}`);
    injectCss(el.ownerDocument);
    this._el = el;
    this._grid = gridOf(opts.projection);
    this._minZoom = zoomLevel(opts.minZoom ?? MIN_ZOOM, 0, 20);
    this._maxZoom = zoomLevel(opts.maxZoom ?? MAX_ZOOM, this._minZoom, 20);
    const custom = Array.isArray(opts.layers) && opts.layers.length > 0;
    this._mapType = custom ? null : MAP_TYPES.TMAP_NORMAL_MAP;
    this._core = createCore(el, { grid: this._grid, basemap: "vec", labels: true, emap: !custom, minZoom: this._minZoom, maxZoom: this._maxZoom });
    this._olMap = this._core.getLibMap();
    this._overlays = [];
    this._controls = [];
    this._layers = [];
    this._openInfo = null;
    this._vector = null;
    this._maxBounds = null;
    this._loaded = false;
    this._style = null;
    wireEvents(this);
    // the SDK's errors (a refused key: 401/403, a quota: 429) as an `error` event of the map
    this._core.onError((e) => {
      if (typeof console !== "undefined") console.error(`T.Map: ${e.status} ${e.title}: ${e.detail}`);
      this.fire("error", { status: e.status, title: e.title, detail: e.detail });
    });
    if (custom) for (const l of opts.layers) this.addLayer(l);
    if (opts.maxBounds) this.setMaxBounds(opts.maxBounds);
    if (opts.center) this.centerAndZoom(opts.center, opts.zoom ?? this._minZoom);
  }

  // --- coordinates ---------------------------------------------------------------------------

  _view() { return this._olMap.getView(); }

  _proj() { return this._view().getProjection(); }

  /** A T.LngLat (or [lng, lat]) in the view's coordinates. */
  _toView(lnglat) {
    const p = toLngLat(lnglat);
    return fromLonLat([p.lng, p.lat], this._proj());
  }

  _fromView(coord) {
    const [lng, lat] = toLonLat(coord, this._proj());
    return new LngLat(lng, lat);
  }

  _zoomOfResolution(res) {
    return Math.log2(resolutionOf(this._grid, 0) / res);
  }

  // --- state ---------------------------------------------------------------------------------

  getLibMap() { return this._olMap; }

  /** The Geoplat.Map underneath. */
  getGeoplatMap() { return this._core.map; }

  getContainer() { return this._el; }

  getCode() { return codeOf(this._grid); }

  getCenter() {
    const c = this._view().getCenter();
    return c ? this._fromView(c) : undefined;
  }

  /** The level (the SDK's view has zoom n = matrix level n). */
  getZoom() {
    const z = this._view().getZoom();
    return z === undefined ? undefined : Math.round(z * 1e6) / 1e6;
  }

  getMinZoom() { return this._minZoom; }

  getMaxZoom() { return this._maxZoom; }

  getSize() {
    const s = this._olMap.getSize() || [this._el.clientWidth, this._el.clientHeight];
    return new Point(s[0], s[1]);
  }

  getBounds() {
    const size = this._olMap.getSize() || [this._el.clientWidth, this._el.clientHeight];
    const ext = this._view().calculateExtent(size);
    const sw = this._fromView([ext[0], ext[1]]);
    const ne = this._fromView([ext[2], ext[3]]);
    return new LngLatBounds(sw, ne);
  }

  getDistance(a, b) { return toLngLat(a).distanceTo(toLngLat(b)); }

  /** The center and level that show all the points (or a T.LngLatBounds). */
  getViewport(view) {
    const pts = view instanceof LngLatBounds ? [view.getSouthWest(), view.getNorthEast()] : (Array.isArray(view) ? view : []);
    if (!pts.length) return { center: this.getCenter(), zoom: this.getZoom() };
    const ext = boundingExtent(pts.map((p) => this._toView(p)));
    const size = this._olMap.getSize() || [this._el.clientWidth || 256, this._el.clientHeight || 256];
    const pad = 20;
    const w = Math.max(1, size[0] - 2 * pad);
    const h = Math.max(1, size[1] - 2 * pad);
    const res = Math.max((ext[2] - ext[0]) / w, (ext[3] - ext[1]) / h);
    let zoom = res > 0 ? Math.floor(this._zoomOfResolution(res) + 1e-6) : this._maxZoom;
    zoom = Math.min(this._maxZoom, Math.max(this._minZoom, zoom));
    return { center: this._fromView(getCenter(ext)), zoom };
  }

  setViewport(view) {
    const v = this.getViewport(view);
    if (v.center && Number.isFinite(v.zoom)) this.centerAndZoom(v.center, v.zoom);
  }

  // --- changing the view ---------------------------------------------------------------------

  centerAndZoom(lnglat, zoom) {
    const z = zoomLevel(zoom ?? this.getZoom() ?? this._minZoom, this._minZoom, this._maxZoom);
    const view = this._view();
    view.cancelAnimations();
    view.setCenter(this._toView(this._clamp(toLngLat(lnglat))));
    view.setZoom(z);
    if (!this._loaded) {
      this._loaded = true;
      this.fire("load", {});
    }
  }

  panTo(lnglat, zoom) {
    const view = this._view();
    const opts = { center: this._toView(this._clamp(toLngLat(lnglat))), duration: 250 };
    if (zoom !== undefined && zoom !== null) opts.zoom = zoomLevel(zoom, this._minZoom, this._maxZoom);
    view.animate(opts);
  }

  panBy(offset) {
    const p = offset instanceof Point ? offset : new Point(offset.x, offset.y);
    const view = this._view();
    const c = view.getCenter();
    const res = view.getResolution();
    if (!c || !res) return;
    view.animate({ center: [c[0] + p.x * res, c[1] - p.y * res], duration: 250 });
  }

  setZoom(zoom) {
    this._view().setZoom(zoomLevel(zoom, this._minZoom, this._maxZoom));
  }

  zoomIn() { this._zoomBy(1); }

  zoomOut() { this._zoomBy(-1); }

  _zoomBy(d) {
    const z = Math.round(this.getZoom() ?? this._minZoom) + d;
    const target = zoomLevel(z, this._minZoom, this._maxZoom);
    this._view().animate({ zoom: target, duration: 250 });
  }

  checkResize() { this._olMap.updateSize(); }

  setMinZoom(level) {
    this._minZoom = zoomLevel(level, 0, this._maxZoom);
    this._view().setMinZoom(this._minZoom);
    this.fire("levels", { minZoom: this._minZoom, maxZoom: this._maxZoom });
  }

  setMaxZoom(level) {
    this._maxZoom = zoomLevel(level, this._minZoom, 20);
    this._view().setMaxZoom(this._maxZoom);
    this.fire("levels", { minZoom: this._minZoom, maxZoom: this._maxZoom });
  }

  /** Keeps the center inside the bounds (Tianditu bounces back; here the center is held). */
  setMaxBounds(bounds) {
    if (bounds !== null && !(bounds instanceof LngLatBounds)) throw new TypeError("T.Map.setMaxBounds: expected a T.LngLatBounds");
    this._maxBounds = bounds && bounds.isValid() ? bounds : null;
    const c = this.getCenter();
    if (c && this._maxBounds && !this._maxBounds.contains(c)) this._view().setCenter(this._toView(this._clamp(c)));
  }

  _clamp(p) {
    const b = this._maxBounds;
    if (!b) return p;
    return new LngLat(Math.min(b.getEast(), Math.max(b.getWest(), p.lng)), Math.min(b.getNorth(), Math.max(b.getSouth(), p.lat)));
  }

  // --- map types and styles -----------------------------------------------------------------

  /** TMAP_NORMAL_MAP, TMAP_SATELLITE_MAP, TMAP_HYBRID_MAP, TMAP_TERRAIN_MAP, TMAP_TERRAIN_HYBRID_MAP,
   * or a `new T.MapType([tileLayer...], name)`. */
  setMapType(mapType) {
    const e = emapOf(mapType);
    if (this._mapType && !emapOf(this._mapType)) for (const l of this._mapType.getLayers()) this.removeLayer(l);
    if (e) {
      this._core.setEmap(true);
      this._core.setBasemap(e.basemap, !!e.labels);
    } else {
      this._core.setEmap(false);
      for (const l of mapType.getLayers()) this.addLayer(l);
    }
    this._mapType = mapType;
    this._applyStyle();
    this.fire("maptypechange", { mapType });
  }

  getMapType() { return this._mapType; }

  /** "black" or "indigo": the base map drawn darker, as Tianditu's styles. */
  setStyle(style) {
    if (style !== "black" && style !== "indigo") throw new TypeError('T.Map.setStyle: "black" or "indigo"');
    this._style = style;
    this._applyStyle();
  }

  removeStyle() {
    this._style = null;
    this._applyStyle();
  }

  _applyStyle() {
    const filter = this._style === "black" ? "invert(1) grayscale(1) brightness(0.9)"
      : this._style === "indigo" ? "invert(1) sepia(1) hue-rotate(180deg) saturate(2) brightness(0.8)" : "";
    this._core.setFilter(filter);
  }

  // --- interactions -------------------------------------------------------------------------

  _interactions(Kind) {
    return this._olMap.getInteractions().getArray().filter((i) => i instanceof Kind);
  }

  _toggle(Kinds, on) {
    for (const K of Kinds) for (const i of this._interactions(K)) i.setActive(on);
  }

  _active(K) { return this._interactions(K).some((i) => i.getActive()); }

  enableDrag() { this._toggle([DragPan], true); }

  disableDrag() { this._toggle([DragPan], false); }

  isDrag() { return this._active(DragPan); }

  enableScrollWheelZoom() { this._toggle([MouseWheelZoom], true); }

  disableScrollWheelZoom() { this._toggle([MouseWheelZoom], false); }

  isScrollWheelZoom() { return this._active(MouseWheelZoom); }

  enableDoubleClickZoom() { this._toggle([DoubleClickZoom], true); }

  disableDoubleClickZoom() { this._toggle([DoubleClickZoom], false); }

  isDoubleClickZoom() { return this._active(DoubleClickZoom); }

  enableKeyboard() { this._toggle([KeyboardPan, KeyboardZoom], true); }

  disableKeyboard() { this._toggle([KeyboardPan, KeyboardZoom], false); }

  isKeyboard() { return this._active(KeyboardPan); }

  enablePinchToZoom() { this._toggle([PinchZoom], true); }

  disablePinchToZoom() { this._toggle([PinchZoom], false); }

  isPinchToZoom() { return this._active(PinchZoom); }

  enableInertia() { this._inertia = true; }

  disableInertia() { this._inertia = false; }

  isInertia() { return this._inertia !== false; }

  enableContinuousZoom() { this._continuous = true; }

  disableContinuousZoom() { this._continuous = false; }

  isContinuousZoom() { return this._continuous !== false; }

  enableAutoResize() { this._autoResize = true; }

  disableAutoResize() { this._autoResize = false; }

  // --- coordinates <-> pixels ---------------------------------------------------------------

  containerPointToLngLat(pixel) {
    const c = this._olMap.getCoordinateFromPixel([pixel.x, pixel.y]);
    return c ? this._fromView(c) : undefined;
  }

  lngLatToContainerPoint(lnglat) {
    const px = this._olMap.getPixelFromCoordinate(this._toView(lnglat));
    return px ? new Point(px[0], px[1]) : undefined;
  }

  lngLatToLayerPoint(lnglat) { return this.lngLatToContainerPoint(lnglat); }

  layerPointToLngLat(pixel) { return this.containerPointToLngLat(pixel); }

  // --- overlays -----------------------------------------------------------------------------

  _vectorSource() {
    if (!this._vector) {
      this._vector = new VectorLayer({ source: new VectorSource(), zIndex: 500, properties: { tianditu: "overlays" } });
      this._olMap.addLayer(this._vector);
    }
    return this._vector.getSource();
  }

  addOverLay(overlay) {
    if (!(overlay instanceof OverlayBase) && !(overlay && typeof overlay.onAdd === "function")) {
      throw new TypeError("T.Map.addOverLay: expected a T.Marker, T.Label, T.Polyline...");
    }
    if (this._overlays.includes(overlay)) return;
    if (overlay.getMap && overlay.getMap() && overlay.getMap() !== this) overlay.getMap().removeOverLay(overlay);
    this._overlays.push(overlay);
    if (overlay instanceof OverlayBase) {
      overlay._add(this);
    } else {
      // a custom T.Overlay.extend({onAdd, onRemove, update}): its element goes into the
      // overlays' container and `update` runs after each view change
      overlay._tdtMap = this;
      const el = overlay.onAdd(this);
      if (el && el.nodeType === 1) this._olMap.getOverlayContainer().appendChild(el);
      overlay._tdtEl = el;
      if (typeof overlay.update === "function") overlay.update();
    }
    this.fire("addoverlay", { addoverlay: overlay });
  }

  addOverlay(overlay) { this.addOverLay(overlay); }

  removeOverLay(overlay) {
    const i = this._overlays.indexOf(overlay);
    if (i < 0) return;
    this._overlays.splice(i, 1);
    if (this._openInfo && (this._openInfo.owner === overlay || this._openInfo.win === overlay)) this.closeInfoWindow();
    if (overlay instanceof OverlayBase) {
      overlay._remove();
    } else {
      if (typeof overlay.onRemove === "function") overlay.onRemove();
      if (overlay._tdtEl && overlay._tdtEl.parentNode) overlay._tdtEl.parentNode.removeChild(overlay._tdtEl);
      overlay._tdtMap = null;
    }
    this.fire("removeoverlay", { removeoverlay: overlay });
  }

  removeOverlay(overlay) { this.removeOverLay(overlay); }

  clearOverLays() {
    this.closeInfoWindow();
    for (const o of this._overlays.slice()) {
      this._overlays.splice(this._overlays.indexOf(o), 1);
      if (o instanceof OverlayBase) o._remove();
      else {
        if (typeof o.onRemove === "function") o.onRemove();
        if (o._tdtEl && o._tdtEl.parentNode) o._tdtEl.parentNode.removeChild(o._tdtEl);
      }
    }
    this.fire("clearoverlays", {});
  }

  clearOverlays() { this.clearOverLays(); }

  getOverlays() { return this._overlays.slice(); }

  getPanes() {
    const c = this._olMap.getOverlayContainerStopEvent();
    return { overlayPane: this._olMap.getOverlayContainer(), markerPane: c, popupPane: c, mapPane: this._olMap.getViewport() };
  }

  // --- info windows ---------------------------------------------------------------------------

  openInfoWindow(infoWindow, lnglat) {
    if (!infoWindow || typeof infoWindow._openAt !== "function") throw new TypeError("T.Map.openInfoWindow: expected a T.InfoWindow");
    const at = lnglat ?? infoWindow.getLngLat();
    if (!at) throw new TypeError("T.Map.openInfoWindow: no position");
    this.closeInfoWindow();
    this._openInfo = { win: infoWindow, owner: null };
    infoWindow._openAt(this, at, [0, 0]);
  }

  _openInfoWindowOn(infoWindow, owner) {
    if (!infoWindow || typeof infoWindow._openAt !== "function") throw new TypeError("openInfoWindow: expected a T.InfoWindow");
    this.closeInfoWindow();
    this._openInfo = { win: infoWindow, owner };
    const a = owner._infoAnchor();
    infoWindow._openAt(this, a.lnglat, a.offset);
  }

  _placeInfoWindow() {
    const o = this._openInfo;
    if (!o || !o.owner) return;
    const a = o.owner._infoAnchor();
    o.win.setLngLat(a.lnglat);
  }

  closeInfoWindow() {
    const o = this._openInfo;
    if (!o) return;
    this._openInfo = null;
    o.win._close();
  }

  // --- controls ------------------------------------------------------------------------------

  addControl(control) {
    if (!control || typeof control._addTo !== "function") throw new TypeError("T.Map.addControl: expected a T.Control");
    if (this._controls.includes(control)) return;
    this._controls.push(control);
    control._addTo(this);
    this.fire("addcontrol", { addcontrol: control });
  }

  removeControl(control) {
    const i = this._controls.indexOf(control);
    if (i < 0) return;
    this._controls.splice(i, 1);
    control._removeFrom(this);
    this.fire("removecontrol", { removecontrol: control });
  }

  getControls() { return this._controls.slice(); }

  /** The corner box of a position ("topleft"...), made on first use. */
  _corner(position) {
    const pos = ["topleft", "topright", "bottomleft", "bottomright"].includes(position) ? position : "topleft";
    this._corners ||= {};
    if (!this._corners[pos]) {
      const div = document.createElement("div");
      const [v, h] = [pos.startsWith("top") ? "top" : "bottom", pos.endsWith("left") ? "left" : "right"];
      div.className = `tdt-control-container tdt-${v} tdt-${h}`;
      this._olMap.getOverlayContainerStopEvent().appendChild(div);
      this._corners[pos] = div;
    }
    return this._corners[pos];
  }

  // --- tile layers ---------------------------------------------------------------------------

  addLayer(layer) {
    if (!layer || typeof layer._olLayer !== "function") throw new TypeError("T.Map.addLayer: expected a T.TileLayer");
    if (this._layers.includes(layer)) return;
    this._layers.push(layer);
    this._olMap.addLayer(layer._olLayer(this));
    this.fire("layeradd", { layer });
  }

  removeLayer(layer) {
    const i = this._layers.indexOf(layer);
    if (i < 0) return;
    this._layers.splice(i, 1);
    this._olMap.removeLayer(layer._olLayer(this));
    layer._detach();
    this.fire("layerremove", { layer });
  }

  getLayers() { return this._layers.slice(); }

  clearLayers() { for (const l of this._layers.slice()) this.removeLayer(l); }
}

export { MapType, MAP_TYPES };
