/**
 * T.TileLayer and T.TileLayer.WMS (lvzhao1995/tianditu-types `src/layer/tileLayer.d.ts`,
 * `wms.d.ts`). A T.TileLayer URL is a template with `{x}`, `{y}`, `{z}` (and Leaflet's `{s}`
 * over `subdomains`, default "0123456" as Tianditu's t0-t7 hosts... here the page's own), read
 * in the map's grid: in a `projection: "EPSG:4326"` map `{z}` is the `c` grid's level
 * (Tianditu's TILEMATRIX), so `.../vec_c/wmts?...&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}` works
 * as written. Options: minZoom (0), maxZoom (18), opacity (1), zIndex, bounds, errorTileUrl.
 * WMS options: layers, styles, format ("image/jpeg"), transparent (false), version ("1.1.1"),
 * srs (the map's projection).
 */

import TileLayer from "ol/layer/Tile.js";
import TileWMS from "ol/source/TileWMS.js";
import XYZ from "ol/source/XYZ.js";
import TileGrid from "ol/tilegrid/TileGrid.js";
import { transformExtent } from "ol/proj.js";

import { LngLatBounds } from "./base.js";
import { Evented } from "./events.js";
import { resolutionOf, tileUrl, wmsParams } from "./maptype.js";

const C_EXTENT = [-180, -90, 180, 90];

/** The `c` grid as an XYZ tile grid: level z = Tianditu's TILEMATRIX z. */
function cTileGrid() {
  return new TileGrid({
    origin: [-180, 90],
    extent: C_EXTENT,
    resolutions: Array.from({ length: 21 }, (_, z) => resolutionOf("c", z)),
    tileSize: 256,
  });
}


export class TTileLayer extends Evented {
  /**
   * @param {string} url
   * @param {{minZoom?: number, maxZoom?: number, opacity?: number, zIndex?: number,
   *   bounds?: LngLatBounds, errorTileUrl?: string, subdomains?: string|string[]}} [opts]
   */
  constructor(url, opts = {}) {
    super();
    if (typeof url !== "string" || !url) throw new TypeError("T.TileLayer: the URL is missing");
    this._url = url;
    this.options = Object.assign({ minZoom: 0, maxZoom: 18, opacity: 1 }, opts);
    this._layer = null;
    this._map = null;
  }

  setOpacity(opacity) {
    this.options.opacity = Math.min(1, Math.max(0, Number(opacity)));
    if (this._layer) this._layer.setOpacity(this.options.opacity);
    return this;
  }

  setZIndex(z) {
    this.options.zIndex = Number(z);
    if (this._layer) this._layer.setZIndex(this.options.zIndex);
    return this;
  }

  refresh() {
    if (this._layer) this._layer.getSource().refresh();
    return this;
  }

  setUrl(url) {
    this._url = String(url);
    if (this._layer) this._layer.setSource(this._source(this._map));
    return this;
  }

  getUrl() { return this._url; }

  getContainer() { return this._map ? this._map.getContainer() : null; }

  _subdomains() {
    const s = this.options.subdomains ?? "01234567";
    return typeof s === "string" ? s.split("") : s;
  }

  _source(map) {
    const grid = map._grid;
    const subs = this._subdomains();
    const template = this._url;
    const source = new XYZ({
      projection: map._proj(),
      tileGrid: grid === "c" ? cTileGrid() : undefined,
      tileUrlFunction: (tc) => tileUrl(template, tc[0], tc[1], tc[2], subs),
      crossOrigin: "anonymous",
      wrapX: grid === "w",
    });
    this._events(source);
    return source;
  }

  _events(source) {
    let pending = 0;
    source.on("tileloadstart", (e) => {
      if (pending++ === 0) this.fire("loading", {});
      this.fire("tileloadstart", { tile: e.tile });
    });
    const done = (type) => (e) => {
      this.fire(type, { tile: e.tile });
      if (--pending === 0) this.fire("load", {});
    };
    source.on("tileloadend", done("tileload"));
    source.on("tileloaderror", (e) => {
      if (this.options.errorTileUrl && e.tile && e.tile.getImage) {
        const img = e.tile.getImage();
        if (img && img.src !== this.options.errorTileUrl) img.src = this.options.errorTileUrl;
      }
      done("tileerror")(e);
    });
  }

  /** The OpenLayers layer, made for the map on first use. */
  _olLayer(map) {
    if (!this._layer) {
      this._map = map;
      const o = this.options;
      const b = o.bounds instanceof LngLatBounds && o.bounds.isValid() ? o.bounds : null;
      this._layer = new TileLayer({
        source: this._source(map),
        opacity: Number(o.opacity),
        zIndex: Number.isFinite(Number(o.zIndex)) ? Number(o.zIndex) : 0,
        minZoom: Number(o.minZoom) > 0 ? Number(o.minZoom) - 1e-6 : undefined,
        maxZoom: Number.isFinite(Number(o.maxZoom)) ? Number(o.maxZoom) + 1 : undefined,
        extent: b ? transformExtent([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], "EPSG:4326", map._proj()) : undefined,
        properties: { tianditu: "tilelayer" },
      });
    }
    return this._layer;
  }

  _detach() {
    this._layer = null;
    this._map = null;
  }
}

const WMS_SRS = { "EPSG:900913": "EPSG:3857", "EPSG:102100": "EPSG:3857", "EPSG:4326": "EPSG:4326", "EPSG:4490": "EPSG:4490", "EPSG:3857": "EPSG:3857" };

export class TileLayerWMS extends TTileLayer {
  /**
   * @param {string} url the service URL (`http://NODE/wms?tk=KEY`)
   * @param {{layers?: string, styles?: string, format?: string, transparent?: boolean,
   *   version?: string, srs?: string}} [opts]
   */
  constructor(url, opts = {}) {
    super(url, Object.assign({ format: "image/jpeg", transparent: false, version: "1.1.1", styles: "" }, opts));
    if (!this.options.layers) throw new TypeError("T.TileLayer.WMS: the layers option is missing");
  }

  /** The GetMap parameters sent. */
  wmsParams() { return wmsParams(this.options); }

  _source(map) {
    const srs = this.options.srs ? WMS_SRS[String(this.options.srs).toUpperCase()] : null;
    if (this.options.srs && !srs) throw new TypeError(`T.TileLayer.WMS: srs ${String(this.options.srs).slice(0, 20)} is not supported`);
    const source = new TileWMS({
      url: this._url,
      params: this.wmsParams(),
      projection: srs || map._proj(),
      tileGrid: !srs && map._grid === "c" ? cTileGrid() : undefined,
      crossOrigin: "anonymous",
      wrapX: map._grid === "w",
    });
    this._events(source);
    return source;
  }
}

TTileLayer.WMS = TileLayerWMS;
