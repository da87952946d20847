/**
 * T.Icon, T.Marker, T.Label, T.InfoWindow (lvzhao1995/tianditu-types `src/overlay/icon.d.ts`,
 * `marker.d.ts`, `label.d.ts`, `infowindow.d.ts`): DOM elements placed with OpenLayers'
 * `ol/Overlay`, as Tianditu's are DOM elements in its panes (so page CSS and clicks reach
 * them). Defaults as typed: icon 25x41 anchored at (12, 41); info window max width 300, min
 * 50, close button on, offset (0, 7), autoPan off, closeOnClick off.
 */

import Overlay from "ol/Overlay.js";

import { LngLat, Point, toLngLat } from "./base.js";
import { OverlayBase, TYPES } from "./overlay.js";

// the default marker: a blue pin drawn here (Tianditu's marker-icon.png lives on its CDN)
const DEFAULT_ICON_URL = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="25" height="41" viewBox="0 0 25 41">' +
  '<path d="M12.5 0C5.6 0 0 5.6 0 12.5 0 21.9 12.5 41 12.5 41S25 21.9 25 12.5C25 5.6 19.4 0 12.5 0z" fill="#2a81cb" stroke="#1f5f96"/>' +
  '<circle cx="12.5" cy="12.5" r="5" fill="#fff"/></svg>');

function point(p, what) {
  if (p instanceof Point) return p;
  if (Array.isArray(p)) return new Point(p[0], p[1]);
  if (p && typeof p === "object") return new Point(p.x, p.y);
  throw new TypeError(`${what}: expected a T.Point`);
}

export class Icon {
  /** @param {{iconUrl?: string, iconSize?: Point, iconAnchor?: Point}} [opts] */
  constructor(opts = {}) {
    this.options = {};
    this.setIconUrl(opts.iconUrl || DEFAULT_ICON_URL);
    this.setIconSize(opts.iconSize || new Point(25, 41));
    this.setIconAnchor(opts.iconAnchor ||
      new Point(Math.round(this.options.iconSize.x / 2), this.options.iconSize.y));
  }

  static Default() { return new Icon(); }

  setIconUrl(url) { this.options.iconUrl = String(url); }

  getIconUrl() { return this.options.iconUrl; }

  setIconSize(size) { this.options.iconSize = point(size, "T.Icon iconSize"); }

  getIconSize() { return this.options.iconSize; }

  setIconAnchor(anchor) { this.options.iconAnchor = point(anchor, "T.Icon iconAnchor"); }

  getIconAnchor() { return this.options.iconAnchor; }
}

/** A DOM overlay: one element, one ol/Overlay, kept in step with show/hide/opacity/zIndex. */
class DomOverlay extends OverlayBase {
  constructor(lnglat, options) {
    super(options);
    this._lnglat = lnglat === undefined || lnglat === null ? null : toLngLat(lnglat);
    this._el = null;
    this._ol = null;
  }

  setLngLat(lnglat) {
    this._lnglat = toLngLat(lnglat);
    this._place();
    if (this._map && this._map._openInfo && this._map._openInfo.owner === this) this._map._placeInfoWindow();
  }

  getLngLat() { return this._lnglat; }

  getElement() { return this._el; }

  _build() { return document.createElement("div"); }

  _offset() { return [0, 0]; }

  _add(map) {
    super._add(map);
    this._el = this._build();
    this._ol = new Overlay({ element: this._el, positioning: "top-left", offset: this._offset(), stopEvent: true });
    map._olMap.addOverlay(this._ol);
    for (const type of ["click", "dblclick", "mousedown", "mouseup", "mouseover", "mouseout"]) {
      this._el.addEventListener(type, (ev) => {
        if (type === "click" || type === "dblclick") ev.stopPropagation();
        this.fire(type, this._eventData(ev));
      });
    }
    this._place();
    this._render();
  }

  _remove() {
    if (this._map && this._ol) this._map._olMap.removeOverlay(this._ol);
    this._ol = null;
    this._el = null;
    this.fire("remove", {});
    super._remove();
  }

  _eventData(ev) {
    const map = this._map;
    const data = { lnglat: this._lnglat };
    if (map && ev && "clientX" in ev) {
      const r = map._olMap.getViewport().getBoundingClientRect();
      data.containerPoint = new Point(ev.clientX - r.left, ev.clientY - r.top);
    }
    return data;
  }

  _place() {
    if (this._ol && this._map) this._ol.setPosition(this._lnglat ? this._map._toView(this._lnglat) : undefined);
  }

  _render() {
    if (!this._el) return;
    this._el.style.display = this._hidden ? "none" : "";
    this._el.style.opacity = String(this._opacity);
    const container = this._el.parentElement; // ol's .ol-overlay-container
    if (container) container.style.zIndex = String(Math.round(this._zIndex) || 0);
  }
}

export class Marker extends DomOverlay {
  /**
   * @param {LngLat} lnglat
   * @param {{icon?: Icon, draggable?: boolean, title?: string, zIndexOffset?: number, opacity?: number}} [opts]
   */
  constructor(lnglat, opts = {}) {
    if (lnglat === undefined || lnglat === null) throw new TypeError("T.Marker: the position is missing");
    super(lnglat, opts);
    this._icon = opts.icon instanceof Icon ? opts.icon : Icon.Default();
    this._draggable = !!opts.draggable;
    this._dragging = null;
    if (opts.extData !== undefined) this.extData = opts.extData;
  }

  getType() { return TYPES.marker; }

  setIcon(icon) {
    if (!(icon instanceof Icon)) throw new TypeError("T.Marker.setIcon: expected a T.Icon");
    this._icon = icon;
    if (this._el) {
      this._styleIcon();
      this._ol.setOffset(this._offset());
    }
  }

  getIcon() { return this._icon; }

  setZIndexOffset(n) { this.setZIndex(n); }

  setTitle(title) {
    this.options.title = String(title ?? "");
    if (this._el) this._el.title = this.options.title;
  }

  getTitle() { return this.options.title || ""; }

  enableDragging() { this._draggable = true; }

  disableDragging() { this._draggable = false; }

  isDragging() { return !!this._dragging; }

  _offset() {
    const a = this._icon.getIconAnchor();
    return [-a.x, -a.y];
  }

  _infoAnchor() {
    // the info window's tip at the top centre of the icon
    const a = this._icon.getIconAnchor();
    const s = this._icon.getIconSize();
    return { lnglat: this._lnglat, offset: [Math.round(s.x / 2 - a.x), -a.y] };
  }

  _styleIcon() {
    const img = this._el;
    img.src = this._icon.getIconUrl();
    const s = this._icon.getIconSize();
    img.style.width = `${s.x}px`;
    img.style.height = `${s.y}px`;
  }

  _build() {
    const img = document.createElement("img");
    img.className = "tdt-marker-icon tdt-interactive";
    img.alt = "";
    img.draggable = false;
    if (this.options.title) img.title = String(this.options.title);
    this._el = img;
    this._styleIcon();
    img.addEventListener("pointerdown", (ev) => this._dragStart(ev));
    return img;
  }

  _dragStart(ev) {
    if (!this._draggable || !this._map || ev.button !== 0) return;
    ev.preventDefault();
    ev.stopPropagation();
    const olMap = this._map._olMap;
    const rect = olMap.getViewport().getBoundingClientRect();
    const a = this._icon.getIconAnchor();
    const move = (e) => {
      const px = [e.clientX - rect.left, e.clientY - rect.top];
      if (!this._dragging.moved) {
        this._dragging.moved = true;
        this.fire("dragstart", {});
      }
      const coord = olMap.getCoordinateFromPixel(px);
      if (!coord) return;
      this._lnglat = this._map._fromView(coord);
      this._place();
      this.fire("drag", { lnglat: this._lnglat });
    };
    const up = () => {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      const moved = this._dragging && this._dragging.moved;
      this._dragging = null;
      if (moved) this.fire("dragend", { lnglat: this._lnglat });
    };
    this._dragging = { moved: false, anchor: a };
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }
}

export class Label extends DomOverlay {
  /** @param {{text?: string, offset?: Point, position?: LngLat}} [opts] */
  constructor(opts = {}) {
    super(opts.position || new LngLat(0, 0), opts);
    this._text = String(opts.text ?? "");
    this._labelOffset = opts.offset ? point(opts.offset, "T.Label offset") : new Point(0, 0);
    this._title = String(opts.title ?? "");
    this._style = { fontSize: null, fontColor: null, backgroundColor: null, borderLine: null, borderColor: null };
  }

  getType() { return TYPES.label; }

  setLabel(content) {
    this._text = String(content ?? "");
    if (this._el) this._el.innerHTML = this._text;
  }

  getLabel() { return this._text; }

  setTitle(title) {
    this._title = String(title ?? "");
    if (this._el) this._el.title = this._title;
  }

  getTitle() { return this._title; }

  setOffset(offset) {
    this._labelOffset = point(offset, "T.Label offset");
    if (this._ol) this._ol.setOffset(this._offset());
  }

  getOffset() { return this._labelOffset; }

  setFontSize(size) { this._setStyle("fontSize", Number(size)); }

  getFontSize() { return this._style.fontSize; }

  setFontColor(color) { this._setStyle("fontColor", String(color)); }

  getFontColor() { return this._style.fontColor; }

  setBackgroundColor(color) { this._setStyle("backgroundColor", String(color)); }

  getBackgroundColor() { return this._style.backgroundColor; }

  setBorderLine(width) { this._setStyle("borderLine", Number(width)); }

  getBorderLine() { return this._style.borderLine; }

  setBorderColor(color) { this._setStyle("borderColor", String(color)); }

  getBorderColor() { return this._style.borderColor; }

  _setStyle(key, value) {
    this._style[key] = value;
    this._applyStyle();
  }

  _applyStyle() {
    if (!this._el) return;
    const s = this._style;
    const st = this._el.style;
    if (Number.isFinite(s.fontSize)) st.fontSize = `${s.fontSize}px`;
    if (s.fontColor) st.color = s.fontColor;
    if (s.backgroundColor) st.backgroundColor = s.backgroundColor;
    if (Number.isFinite(s.borderLine)) st.borderWidth = `${s.borderLine}px`;
    if (s.borderColor) st.borderColor = s.borderColor;
  }

  _offset() { return [this._labelOffset.x, this._labelOffset.y]; }

  _infoAnchor() { return { lnglat: this._lnglat, offset: [0, 0] }; }

  _build() {
    const div = document.createElement("div");
    div.className = "tdt-label";
    // Tianditu sets the text as HTML (pages put <b>, <br> in labels): the page's own content
    div.innerHTML = this._text;
    if (this._title) div.title = this._title;
    this._el = div;
    this._applyStyle();
    return div;
  }
}

export class InfoWindow extends OverlayBase {
  /**
   * @param {string|HTMLElement} content HTML text (the page's own, as Tianditu takes it) or an element
   * @param {{minWidth?: number, maxWidth?: number, maxHeight?: number, autoPan?: boolean,
   *   closeButton?: boolean, offset?: Point, autoPanPadding?: Point, closeOnClick?: boolean}} [opts]
   */
  constructor(content, opts = {}) {
    super(Object.assign({ minWidth: 50, maxWidth: 300, autoPan: false, closeButton: true, closeOnClick: false }, opts));
    this._content = content ?? "";
    this._lnglat = null;
    this._offsetPt = opts.offset ? point(opts.offset, "T.InfoWindow offset") : new Point(0, 7);
    this._el = null;
    this._contentEl = null;
    this._ol = null;
    this._open = false;
  }

  getType() { return TYPES.infowindow; }

  setLngLat(lnglat) {
    this._lnglat = toLngLat(lnglat);
    if (this._ol && this._map) this._ol.setPosition(this._map._toView(this._lnglat));
  }

  getLngLat() { return this._lnglat; }

  isOpen() { return this._open; }

  setContent(content) {
    this._content = content ?? "";
    this._fill();
  }

  getContent() { return this._content; }

  setOffset(offset) { this._offsetPt = point(offset, "T.InfoWindow offset"); }

  getOffset() { return this._offsetPt; }

  update() { this._fill(); }

  getElement() { return this._el; }

  /** `map.addOverLay(infoWindow)` opens it at its position (`setLngLat`), as Tianditu's. */
  _add(map) {
    super._add(map);
    if (this._lnglat) map.openInfoWindow(this, this._lnglat);
  }

  _remove() {
    this._close();
    super._remove();
  }

  _fill() {
    if (!this._contentEl) return;
    const c = this._content;
    if (c && typeof c === "object" && c.nodeType === 1) {
      this._contentEl.replaceChildren(c);
    } else {
      this._contentEl.innerHTML = String(c);
    }
  }

  /** Called by T.Map: shows at `lnglat` with an extra pixel offset (the marker's). */
  _openAt(map, lnglat, extra) {
    this._map = map;
    this._lnglat = toLngLat(lnglat);
    if (!this._el) this._build();
    const o = this.options;
    const offset = [this._offsetPt.x + extra[0], -(this._offsetPt.y) + extra[1] + 7];
    if (!this._ol) {
      const autoPan = o.autoPan
        ? { animation: { duration: 250 }, margin: o.autoPanPadding ? point(o.autoPanPadding, "autoPanPadding").x : 20 }
        : false;
      this._ol = new Overlay({ element: this._el, positioning: "bottom-center", offset, stopEvent: true, autoPan });
      map._olMap.addOverlay(this._ol);
    } else {
      this._ol.setOffset(offset);
    }
    this._ol.setPosition(map._toView(this._lnglat));
    this._el.style.display = "";
    this._open = true;
    this.fire("open", { lnglat: this._lnglat });
  }

  _close() {
    if (!this._open) return;
    this._open = false;
    if (this._ol && this._map) this._map._olMap.removeOverlay(this._ol);
    this._ol = null;
    this.fire("close", { lnglat: this._lnglat });
  }

  _build() {
    const o = this.options;
    const el = document.createElement("div");
    el.className = "tdt-infowindow";
    const wrap = document.createElement("div");
    wrap.className = "tdt-infowindow-content-wrapper";
    const content = document.createElement("div");
    content.className = "tdt-infowindow-content";
    content.style.minWidth = `${Number(o.minWidth) || 50}px`;
    content.style.maxWidth = `${Number(o.maxWidth) || 300}px`;
    if (o.maxHeight) {
      content.style.maxHeight = `${Number(o.maxHeight)}px`;
      content.style.overflowY = "auto";
    }
    wrap.appendChild(content);
    const tipBox = document.createElement("div");
    tipBox.className = "tdt-infowindow-tip-container";
    const tip = document.createElement("div");
    tip.className = "tdt-infowindow-tip";
    tipBox.appendChild(tip);
    el.append(wrap, tipBox);
    if (o.closeButton !== false) {
      const close = document.createElement("a");
      close.className = "tdt-infowindow-close-button";
      close.href = "#close";
      close.setAttribute("role", "button");
      close.setAttribute("aria-label", "关闭");
      close.textContent = "×";
      close.addEventListener("click", (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        this.fire("clickclose", {});
        if (this._map) this._map.closeInfoWindow();
      });
      el.appendChild(close);
    }
    for (const type of ["click", "dblclick"]) el.addEventListener(type, (ev) => ev.stopPropagation());
    this._el = el;
    this._contentEl = content;
    this._fill();
  }
}
