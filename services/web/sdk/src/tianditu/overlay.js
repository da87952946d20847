/**
 * What every Tianditu overlay has (lvzhao1995/tianditu-types `src/overlay/overlay.d.ts`,
 * `OverlayBase`): events, `getType()`, `getMap()`, show/hide, opacity, z-index, and an info
 * window opened on it. A T.Map adds an overlay by calling `_add(map)` and removes it with
 * `_remove()`; the subclasses put themselves on the OpenLayers map there.
 *
 * `getType()` numbers, as public code tests them (`item.getType() == 2` for markers, `== 4` for
 * lines): 1 label, 2 marker, 3 info window, 4 polyline, 5 polygon, 6 rectangle, 7 circle
 * (3 and 5-7 follow the order of Tianditu's class list; not confirmed by a source).
 */

import { Evented } from "./events.js";

export const TYPES = { label: 1, marker: 2, infowindow: 3, polyline: 4, polygon: 5, rectangle: 6, circle: 7 };

export class OverlayBase extends Evented {
  constructor(options) {
    super();
    this.options = Object.assign({}, options || {});
    this._map = null;
    this._hidden = false;
    this._opacity = this.options.opacity ?? 1;
    this._zIndex = this.options.zIndexOffset ?? this.options.zIndex ?? 0;
    this._infoWindow = null;
  }

  getType() { return 0; }

  getMap() { return this._map; }

  show() {
    this._hidden = false;
    this._render();
  }

  hide() {
    this._hidden = true;
    this._render();
  }

  isHidden() { return this._hidden; }

  setOpacity(opacity) {
    const n = Number(opacity);
    if (Number.isFinite(n)) this._opacity = Math.min(1, Math.max(0, n));
    this._render();
  }

  getOpacity() { return this._opacity; }

  setZIndex(z) {
    const n = Number(z);
    if (Number.isFinite(n)) this._zIndex = n;
    this._render();
  }

  /** Opens an info window at this overlay (its anchor), closing any other on the map. */
  openInfoWindow(infoWindow) {
    if (!this._map) return;
    this._infoWindow = infoWindow;
    this._map._openInfoWindowOn(infoWindow, this);
  }

  closeInfoWindow() {
    if (this._infoWindow && this._map) this._map.closeInfoWindow();
  }

  /** Where an info window opened on this overlay points ({lng, lat} and a pixel offset). */
  _infoAnchor() { return { lnglat: null, offset: [0, 0] }; }

  _add(map) { this._map = map; }

  _remove() { this._map = null; }

  _render() {}
}

/** Tianditu's look for the DOM overlays, injected once per page (class names as Tianditu's,
 * which pages restyle: `.tdt-infowindow-content`, `.tdt-label`...). */
const CSS = `
.tdt-marker-icon{position:absolute;left:0;top:0;display:block;cursor:pointer;user-select:none;-webkit-user-drag:none}
.tdt-label{position:absolute;left:0;top:0;white-space:nowrap;padding:2px 4px;background:#fff;border:1px solid #999;color:#333;font:12px/1.4 sans-serif}
.tdt-infowindow{position:relative;text-align:center;margin-bottom:0}
.tdt-infowindow-content-wrapper{padding:1px;text-align:left;border-radius:4px;background:#fff;color:#333;box-shadow:0 3px 14px rgba(0,0,0,.4)}
.tdt-infowindow-content{margin:13px 19px;line-height:1.4;font:12px/1.5 sans-serif}
.tdt-infowindow-tip-container{width:40px;height:20px;position:relative;overflow:hidden;margin:0 auto;pointer-events:none}
.tdt-infowindow-tip{width:17px;height:17px;padding:1px;margin:-10px auto 0;transform:rotate(45deg);background:#fff;box-shadow:0 3px 14px rgba(0,0,0,.4)}
.tdt-infowindow-close-button{position:absolute;top:0;right:0;padding:4px 4px 0 0;border:none;text-align:center;width:18px;height:14px;font:16px/14px Tahoma,Verdana,sans-serif;color:#c3c3c3;text-decoration:none;font-weight:bold;background:transparent;cursor:pointer}
.tdt-control-container{position:absolute;z-index:800;pointer-events:none}
.tdt-control-container>*{pointer-events:auto}
.tdt-top{top:10px}.tdt-bottom{bottom:10px}.tdt-left{left:10px}.tdt-right{right:10px}
.tdt-control{margin-bottom:6px;clear:both}
.tdt-control-zoom a{display:block;width:26px;height:26px;line-height:26px;text-align:center;background:#fff;color:#000;border:1px solid #ccc;font:bold 18px 'Lucida Console',Monaco,monospace;text-decoration:none;cursor:pointer}
.tdt-control-maptype button{display:block;margin:0 0 2px;padding:3px 8px;background:#fff;border:1px solid #ccc;cursor:pointer;font:12px sans-serif}
.tdt-control-maptype button.active{border-color:#3385ff;color:#3385ff}
.tdt-control-maptype img{width:40px;height:40px;display:block}
.tdt-control-overviewmap .ol-overviewmap-map{border:1px solid #7b98bc;background:#f8f4f0}
.tdt-control-overviewmap .ol-collapsed .ol-overviewmap-map{display:none}
.tdt-control-overviewmap .ol-overviewmap-box{border:2px solid rgba(0,60,136,.7);background:rgba(0,60,136,.1)}
.tdt-control-overviewmap button{display:block;background:#fff;border:1px solid #ccc;cursor:pointer}
.tdt-control-copyright{font:11px sans-serif;background:rgba(255,255,255,.7);padding:0 5px;color:#333}
.tdt-control-scale .ol-scale-line{position:static;background:transparent;padding:0}
.tdt-control-scale .ol-scale-line-inner{border:2px solid #555;border-top:none;color:#333;font:11px sans-serif;text-align:center;background:rgba(255,255,255,.6)}
`;

export function injectCss(doc) {
  if (!doc || doc.getElementById("tdt-compat-css")) return;
  const style = doc.createElement("style");
  style.id = "tdt-compat-css";
  style.textContent = CSS;
  (doc.head || doc.documentElement).appendChild(style);
}
