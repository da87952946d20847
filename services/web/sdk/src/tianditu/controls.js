/**
 * T.Control and T.Control.Zoom / Scale / MapType / OverviewMap / Copyright
 * (lvzhao1995/tianditu-types `src/control/*.d.ts`). A control is a DOM box in one of the four
 * corners ("topleft"... or the T_ANCHOR_* constants); a custom control is
 * `new T.Control({position})` with its own `onAdd(map)` returning its element.
 * The scale bar and the overview are OpenLayers' ScaleLine and OverviewMap inside that box.
 * T.Control.MapType shows titles (Tianditu's default icons live on its CDN; an `icon` given in
 * the options is shown).
 */

import OlOverviewMap from "ol/control/OverviewMap.js";
import ScaleLine from "ol/control/ScaleLine.js";
import TileLayer from "ol/layer/Tile.js";
import View from "ol/View.js";

import { Point } from "./base.js";
import { Evented } from "./events.js";

export class Control extends Evented {
  /** @param {{position?: string}} [opts] */
  constructor(opts = {}) {
    super();
    this.options = Object.assign({ position: "topleft" }, opts || {});
    this._map = null;
    this._container = null;
    this._visible = true;
    this._offset = new Point(0, 0);
  }

  setPosition(position) {
    this.options.position = position || "topleft";
    if (this._map) {
      const map = this._map;
      this._removeFrom(map);
      this._addTo(map);
    }
  }

  getPosition() { return this.options.position; }

  /** Subclasses (and custom controls) make their element here. */
  onAdd(map) { // eslint-disable-line no-unused-vars
    return document.createElement("div");
  }

  onRemove() {}

  getContainer() { return this._container; }

  show() {
    this._visible = true;
    if (this._container) this._container.style.display = "";
  }

  hide() {
    this._visible = false;
    if (this._container) this._container.style.display = "none";
  }

  isVisible() { return this._visible; }

  setOffset(offset) {
    this._offset = offset instanceof Point ? offset : new Point(offset.x, offset.y);
    this._place();
  }

  getOffset() { return this._offset; }

  setOptions(opts) {
    Object.assign(this.options, opts || {});
    return this.options;
  }

  getMap() { return this._map; }

  _place() {
    if (!this._container) return;
    this._container.style.marginLeft = `${this._offset.x}px`;
    this._container.style.marginTop = `${this._offset.y}px`;
  }

  _addTo(map) {
    this._map = map;
    const el = this.onAdd(map) || document.createElement("div");
    el.classList.add("tdt-control");
    this._container = el;
    const corner = map._corner(this.options.position);
    if (String(this.options.position).startsWith("bottom")) corner.insertBefore(el, corner.firstChild);
    else corner.appendChild(el);
    if (!this._visible) el.style.display = "none";
    this._place();
  }

  _removeFrom() {
    this.onRemove(this._map);
    if (this._container && this._container.parentNode) this._container.parentNode.removeChild(this._container);
    this._container = null;
    this._map = null;
  }
}

export class ControlZoom extends Control {
  constructor(opts = {}) {
    super(Object.assign({ zoomInText: "+", zoomOutText: "-", zoomInTitle: "放大", zoomOutTitle: "缩小" }, opts));
  }

  onAdd(map) {
    const div = document.createElement("div");
    div.className = "tdt-control-zoom";
    const button = (text, title, cls, fn) => {
      const a = document.createElement("a");
      a.className = cls;
      a.href = "#";
      a.title = title;
      a.setAttribute("role", "button");
      a.textContent = text;
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        fn();
      });
      div.appendChild(a);
    };
    const o = this.options;
    button(o.zoomInText, o.zoomInTitle, "tdt-control-zoom-in", () => map.zoomIn());
    button(o.zoomOutText, o.zoomOutTitle, "tdt-control-zoom-out", () => map.zoomOut());
    return div;
  }
}

export class ControlScale extends Control {
  constructor(opts = {}) {
    super(Object.assign({ position: "bottomleft" }, opts));
    this._scale = null;
  }

  onAdd(map) {
    const div = document.createElement("div");
    div.className = "tdt-control-scale";
    this._scale = new ScaleLine({ target: div, units: "metric" });
    map._olMap.addControl(this._scale);
    return div;
  }

  onRemove(map) {
    if (this._scale && map) map._olMap.removeControl(this._scale);
    this._scale = null;
  }

  setColor(color) {
    if (this._container) this._container.style.color = String(color);
  }
}

export class ControlCopyright extends Control {
  constructor(opts = {}) {
    super(Object.assign({ position: "bottomright" }, opts));
    this._items = [];
  }

  onAdd() {
    const div = document.createElement("div");
    div.className = "tdt-control-copyright";
    this._render(div);
    return div;
  }

  /** `{id, content, bounds}` as Tianditu's; content is the page's own HTML. */
  addCopyright(item) {
    if (item && item.id !== undefined) this.removeCopyright(item.id);
    this._items.push(item);
    this._render(this._container);
  }

  removeCopyright(id) {
    this._items = this._items.filter((i) => i.id !== id);
    this._render(this._container);
  }

  getCopyright(id) { return this._items.find((i) => i.id === id); }

  getCopyrightCollection() { return this._items.slice(); }

  _render(div) {
    if (!div) return;
    div.innerHTML = this._items.map((i) => String(i.content ?? "")).join(" ");
  }
}

export class ControlMapType extends Control {
  /**
   * @param {Array<{title?: string, icon?: string, layer?: import('./maptype.js').MapType}>} [types]
   *     default 地图, 卫星, 卫星混合 (as Tianditu's)
   */
  constructor(types) {
    const opts = Array.isArray(types) ? {} : (types || {});
    super(Object.assign({ position: "topright" }, opts));
    this._types = Array.isArray(types) ? types : (Array.isArray(opts.mapTypes) ? opts.mapTypes : null);
  }

  _entries() {
    if (this._types) return this._types;
    const g = globalThis;
    return [
      { title: "地图", layer: g.TMAP_NORMAL_MAP },
      { title: "卫星", layer: g.TMAP_SATELLITE_MAP },
      { title: "卫星混合", layer: g.TMAP_HYBRID_MAP },
    ];
  }

  onAdd(map) {
    const div = document.createElement("div");
    div.className = "tdt-control-maptype";
    const buttons = [];
    for (const entry of this._entries()) {
      if (!entry || !entry.layer) continue;
      const b = document.createElement("button");
      b.type = "button";
      b.title = String(entry.title ?? entry.layer.getName());
      if (entry.icon) {
        const img = document.createElement("img");
        img.src = String(entry.icon);
        img.alt = "";
        b.appendChild(img);
      }
      b.appendChild(document.createTextNode(String(entry.title ?? entry.layer.getName())));
      b.addEventListener("click", (ev) => {
        ev.stopPropagation();
        map.setMapType(entry.layer);
      });
      b._tdtMapType = entry.layer;
      buttons.push(b);
      div.appendChild(b);
    }
    this._sync = () => {
      for (const x of buttons) x.classList.toggle("active", x._tdtMapType === map.getMapType());
    };
    this._sync();
    map.addEventListener("maptypechange", this._sync);
    return div;
  }

  onRemove(map) {
    if (map && this._sync) map.removeEventListener("maptypechange", this._sync);
    this._sync = null;
  }
}

export class ControlOverviewMap extends Control {
  /** @param {{anchor?: string, size?: Point, isOpen?: boolean}} [opts] */
  constructor(opts = {}) {
    super(Object.assign({ position: opts.anchor || "bottomright", isOpen: false }, opts));
    this._ov = null;
  }

  onAdd(map) {
    const div = document.createElement("div");
    div.className = "tdt-control-overviewmap";
    const size = this.options.size instanceof Point ? this.options.size : new Point(150, 150);
    this._ov = new OlOverviewMap({
      target: div,
      layers: [],
      collapsed: !this.options.isOpen,
      collapsible: true,
      view: new View({ projection: map._proj() }),
    });
    map._olMap.addControl(this._ov);
    // the base map's sources exist once the SDK has read the node's capabilities
    const ov = this._ov;
    map._core.ready.then(() => {
      if (this._ov !== ov) return;
      for (const l of map._core.baseLayers()) ov.getOverviewMap().addLayer(new TileLayer({ source: l.getSource() }));
    }, () => {});
    const box = this._ov.getOverviewMap().getTargetElement();
    if (box) {
      box.style.width = `${size.x}px`;
      box.style.height = `${size.y}px`;
    }
    return div;
  }

  onRemove(map) {
    if (this._ov && map) map._olMap.removeControl(this._ov);
    this._ov = null;
  }

  changeView() {
    if (!this._ov) return;
    this._ov.setCollapsed(!this._ov.getCollapsed());
    this.fire("viewchange", { isOpen: this.isOpen() });
  }

  isOpen() { return this._ov ? !this._ov.getCollapsed() : !!this.options.isOpen; }

  /** The overview's OpenLayers map (not a T.Map). */
  getMiniMap() { return this._ov ? this._ov.getOverviewMap() : null; }

  setButtonImage() {}

  setBorderColor(color) { if (this._container) this._container.style.borderColor = String(color); }

  setRectBorderColor(color) { this._boxStyle("borderColor", color); }

  setRectBackColor(color) { this._boxStyle("backgroundColor", color); }

  _boxStyle(key, color) {
    const el = this._container && this._container.querySelector(".ol-overviewmap-box");
    if (el) el.style[key] = String(color);
  }
}
