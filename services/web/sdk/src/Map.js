/**
 * @module geoplat/Map
 * `new Geoplat.Map(el, options)`: the government e-map of a node in the `c` (EPSG:4490) or
 * `w` (EPSG:3857) grid, its grid read from the node's WMTS capabilities.
 */
import OlMap from 'ol/Map.js';
import Observable from 'ol/Observable.js';
import View from 'ol/View.js';
import Attribution from 'ol/control/Attribution.js';
import ScaleLine from 'ol/control/ScaleLine.js';
import Zoom from 'ol/control/Zoom.js';
import WMTSCapabilities from 'ol/format/WMTSCapabilities.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import {fromLonLat, get as getProjection, toLonLat, transformExtent} from 'ol/proj.js';
import Basemap, {checkBasemap, viewResolutions} from './Basemap.js';
import Graphic, {checkLngLat, geometryOf} from './Graphic.js';
import GeoplatError, {problemFromResponse} from './GeoplatError.js';
import Popup from './Popup.js';
import {injectCss} from './css.js';
import {defaultNode, defaultKey} from './defaults.js';
import {defaultResolutions, gridOf, matrixSetOf} from './grid.js';
import {getText} from './http.js';
import FeaturesOverlay from './overlays/FeaturesOverlay.js';
import TileOverlay from './overlays/TileOverlay.js';
import {registerCGCS2000} from './proj.js';
import {capabilitiesUrl, normaliseNode} from './urls.js';

/**
 * @typedef {Object} MapOptions
 * @property {string} [key] API key (`tk`): a browser key bound to the page's origin.
 * @property {string} [node] Base URL of the node (default: where the SDK was loaded from).
 * @property {'EPSG:4490'|'EPSG:3857'} [crs] Default `EPSG:4490` (the `c` grid).
 * @property {'vec'|'img'|'ter'} [basemap] Default `vec`.
 * @property {boolean} [labels] Annotation layer on top (default true).
 * @property {Array<number>} [center] [lon, lat] (default the node's... 116.4, 39.9).
 * @property {number} [zoom] Level (Tianditu's numbering: level 1 = 0.703125 deg/px in `c`).
 * @property {number} [minZoom] Default 1.
 * @property {number} [maxZoom] Default the finest level of the capabilities.
 * @property {boolean} [controls] Zoom, scale line and attribution (default true).
 * @property {string} [crossOrigin] Tiles' crossOrigin (`anonymous` to read pixels
 *     cross-origin; the node must then send CORS headers on tiles). Default: none.
 */

const TILE_ERROR_PAUSE_MS = 10000;

export default class Map extends Observable {
  /**
   * @param {HTMLElement|string} target The element (or its id) holding the map.
   * @param {MapOptions} [options] Options.
   */
  constructor(target, options = {}) {
    super();
    const el = typeof target === 'string' ? document.getElementById(target) : target;
    if (!el) {
      throw new TypeError('Geoplat.Map needs an element or the id of one');
    }
    injectCss();
    this.element = el;
    this.options = options;
    this.key = options.key ?? defaultKey();
    this.node = normaliseNode(options.node || defaultNode());
    this.crs = options.crs || 'EPSG:4490';
    this.grid = gridOf(this.crs);
    this.matrixSet = matrixSetOf(this.crs);
    this.projection = this.crs === 'EPSG:4490' ? registerCGCS2000() : getProjection('EPSG:3857');
    checkBasemap(options.basemap || 'vec');
    el.dataset.idle = 'false';
    /** @type {Basemap|null} */
    this.basemap = null;
    /** @type {Object|null} */
    this.capabilities = null;
    this.overlays_ = new Set();
    this.graphics = new VectorSource();
    this.popup = new Popup();
    this.tileErrorAt_ = -Infinity;
    /** @type {GeoplatError|null} */
    this.lastError = null;
    const center = checkLngLat(options.center || [116.391, 39.907]);
    this.map = new OlMap({
      target: el,
      layers: [new VectorLayer({source: this.graphics, zIndex: 100,
        properties: {geoplat: 'graphics'}})],
      overlays: [this.popup.overlay],
      controls: options.controls === false ? [] : [new Zoom(), new ScaleLine(),
        new Attribution({collapsible: false})],
      view: this.makeView_(defaultResolutions(this.grid), fromLonLat(center, this.projection),
        options.zoom ?? 4),
    });
    this.map.on('movestart', () => {
      el.dataset.idle = 'false';
    });
    this.map.on('loadstart', () => {
      el.dataset.idle = 'false';
    });
    this.map.on('rendercomplete', () => {
      if (this.basemap) { // before the base map is there the canvas is blank: no gate yet
        el.dataset.idle = 'true';
        this.dispatchEvent('rendercomplete');
      }
    });
    this.map.on('moveend', () => this.dispatchEvent({type: 'moveend',
      center: this.getCenter(), zoom: this.getZoom()}));
    this.map.on('singleclick', (evt) => this.onClick_(evt));
    /** Resolves once the base map is on (rejects with a GeoplatError; `error` is emitted). */
    this.ready = this.load_(options).catch((err) => {
      this.fail_(err);
      throw err;
    });
    this.ready.catch(() => {}); // the `error` event reports it; no unhandled rejection
  }

  /**
   * @param {Array<number>} resolutions By level.
   * @param {import('ol/coordinate.js').Coordinate} center In the map projection.
   * @param {number} zoom Level.
   * @return {View} The view.
   * @private
   */
  makeView_(resolutions, center, zoom) {
    const o = this.options;
    return new View({projection: this.projection, resolutions, center, zoom,
      minZoom: o.minZoom ?? 1, maxZoom: Math.min(o.maxZoom ?? resolutions.length - 1,
        resolutions.length - 1), constrainResolution: true,
      extent: this.crs === 'EPSG:4490' ? [-180, -90, 180, 90] : undefined,
      showFullExtent: true});
  }

  /**
   * Reads the capabilities, builds the base map and a view on its grid.
   * @param {MapOptions} options The options.
   * @return {Promise<Map>} This map.
   * @private
   */
  async load_(options) {
    const text = await getText(capabilitiesUrl(this.node, this.key));
    const capabilities = new WMTSCapabilities().read(text);
    this.capabilities = capabilities;
    const basemap = new Basemap(capabilities, this.matrixSet, this.projection, {
      name: options.basemap || 'vec', labels: options.labels ?? true,
      crossOrigin: options.crossOrigin});
    const view = this.map.getView();
    const resolutions = viewResolutions(basemap.source(basemap.getName()));
    this.map.setView(this.makeView_(resolutions, view.getCenter(), view.getZoom()));
    for (const layer of basemap.getLayers()) {
      this.watchTiles_(layer);
      this.map.addLayer(layer);
    }
    this.basemap = basemap;
    this.dispatchEvent('ready');
    return this;
  }

  /**
   * Tile load errors: the first failing tile (then one every 10 s at most) is asked again
   * with fetch to read the node's problem detail, which the `error` event carries.
   * @param {import('ol/layer/Base.js').default} layer A tile layer (its source may change).
   * @private
   */
  watchTiles_(layer) {
    const seen = new WeakSet();
    const attach = () => {
      const source = /** @type {any} */ (layer).getSource && /** @type {any} */ (layer).getSource();
      if (!source || seen.has(source) || typeof source.getTileUrlFunction !== 'function') {
        return;
      }
      seen.add(source);
      source.on('tileloaderror', (evt) => this.onTileError_(source, evt.tile));
    };
    attach();
    layer.on('change:source', attach);
  }

  /**
   * @param {any} source The tile source.
   * @param {any} tile The tile that failed.
   * @private
   */
  async onTileError_(source, tile) {
    const now = Date.now();
    if (now - this.tileErrorAt_ < TILE_ERROR_PAUSE_MS) {
      return;
    }
    this.tileErrorAt_ = now;
    const url = source.getTileUrlFunction()(tile.getTileCoord(), 1, this.projection);
    if (!url) {
      return;
    }
    let error;
    try {
      const response = await fetch(url, {credentials: 'omit'});
      error = response.ok
        ? new GeoplatError({status: response.status, title: 'Tile not drawn',
          detail: 'A tile loaded on a second try; the first failed.', url})
        : await problemFromResponse(response, url);
    } catch (cause) {
      error = new GeoplatError({status: 0, title: 'Tile failed', detail: String(cause), url});
    }
    this.fail_(error);
  }

  /**
   * @param {unknown} err What went wrong.
   * @private
   */
  fail_(err) {
    const error = err instanceof GeoplatError ? err
      : new GeoplatError({status: 0, title: 'Error', detail: String(err && err.message || err)});
    /** @type {GeoplatError|null} The last error (also on the element: data-error="403"). */
    this.lastError = error;
    this.element.dataset.error = String(error.status);
    this.dispatchEvent({type: 'error', error, status: error.status, title: error.title,
      detail: error.detail});
  }

  /**
   * @param {import('ol/MapBrowserEvent.js').default} evt The click.
   * @private
   */
  onClick_(evt) {
    let hit = null;
    this.map.forEachFeatureAtPixel(evt.pixel, (feature, layer) => {
      hit = {feature, layer};
      return true;
    }, {hitTolerance: 4});
    const lngLat = toLonLat(evt.coordinate, this.projection);
    const event = {type: 'click', lngLat, pixel: evt.pixel, originalEvent: evt.originalEvent,
      feature: null, properties: null, graphic: null, layer: null};
    if (hit) {
      const {feature, layer} = hit;
      const graphic = feature.get('geoplatGraphic');
      const overlay = layer && layer.get('geoplatOverlay');
      const props = {...feature.getProperties()};
      delete props.geometry;
      delete props.geoplatGraphic;
      Object.assign(event, {feature, properties: props, graphic: graphic || null,
        layer: overlay || null});
      const content = graphic ? graphic.popupContent()
        : overlay && overlay.popupContent ? overlay.popupContent(feature) : null;
      const geom = feature.getGeometry();
      // a vector tile's feature is a RenderFeature: flat coordinates, no getCoordinates()
      const point = /** @type {any} */ (geom);
      const at = !geom || geom.getType() !== 'Point' ? evt.coordinate
        : typeof point.getCoordinates === 'function' ? point.getCoordinates()
          : point.getFlatCoordinates().slice(0, 2);
      if (content !== null && content !== undefined) {
        this.popup.open(at, content);
      }
      const target = graphic || overlay;
      if (target) {
        target.dispatchEvent({...event, type: 'click'});
      }
      this.dispatchEvent({...event, type: 'featureclick'});
    }
    this.dispatchEvent(event);
  }

  /** @return {OlMap} The OpenLayers map, for anything the SDK does not wrap. */
  getLibMap() {
    return this.map;
  }

  /** @return {string} The base map shown (`vec`, `img`, `ter`). */
  getBasemap() {
    return this.basemap ? this.basemap.getName() : (this.options.basemap || 'vec');
  }

  /**
   * Switches the base map (the annotation layer follows: cva, cia, cta).
   * @param {'vec'|'img'|'ter'} name The base map.
   * @return {Promise<void>} Once switched.
   */
  async setBasemap(name) {
    checkBasemap(name);
    this.options = {...this.options, basemap: name};
    await this.ready;
    this.basemap.setName(name);
  }

  /**
   * Shows or hides the annotation layer.
   * @param {boolean} on Shown.
   * @return {Promise<void>} Once done.
   */
  async setLabels(on) {
    this.options = {...this.options, labels: !!on};
    await this.ready;
    this.basemap.labels.setVisible(!!on);
  }

  /** @return {Array<number>} Centre [lon, lat]. */
  getCenter() {
    return toLonLat(this.map.getView().getCenter(), this.projection);
  }

  /** @return {number} Zoom level. */
  getZoom() {
    return this.map.getView().getZoom();
  }

  /**
   * @param {Array<number>} center [lon, lat].
   * @param {number} [zoom] Level.
   */
  setCenter(center, zoom) {
    const view = this.map.getView();
    view.setCenter(fromLonLat(checkLngLat(center), this.projection));
    if (zoom !== undefined) {
      view.setZoom(zoom);
    }
  }

  /** @param {number} zoom Level. */
  setZoom(zoom) {
    this.map.getView().setZoom(zoom);
  }

  /**
   * Animates to a place.
   * @param {{center?: Array<number>, zoom?: number, duration?: number}} target Where.
   * @return {Promise<boolean>} Whether the animation completed.
   */
  flyTo(target) {
    const view = this.map.getView();
    const anim = {duration: target.duration ?? 800};
    if (target.center) {
      anim.center = fromLonLat(checkLngLat(target.center), this.projection);
    }
    if (target.zoom !== undefined) {
      anim.zoom = target.zoom;
    }
    return new Promise((resolve) => view.animate(anim, resolve));
  }

  /**
   * Fits the view to a box.
   * @param {Array<number>} bounds [minLon, minLat, maxLon, maxLat].
   * @param {{padding?: Array<number>, maxZoom?: number, duration?: number}} [options] As OL's.
   */
  fitBounds(bounds, options = {}) {
    if (!Array.isArray(bounds) || bounds.length !== 4 || !bounds.every(Number.isFinite)) {
      throw new TypeError('bounds must be [minLon, minLat, maxLon, maxLat]');
    }
    const extent = transformExtent(bounds, 'EPSG:4326', this.projection);
    this.map.getView().fit(extent, {padding: options.padding || [20, 20, 20, 20],
      maxZoom: options.maxZoom, duration: options.duration});
  }

  /**
   * Adds an overlay: `{type: 'features', collection, node?, filter?, bbox?, style?, popup?}`,
   * `{type: 'vectortiles', collection, style?}`, `{type: 'wms', layer}`, `{type: 'wmts', layer}`.
   * Its `ready` promise rejects (and the map emits `error`) when the node refuses it.
   * @param {import('./overlays/FeaturesOverlay.js').FeaturesOptions|
   *     import('./overlays/TileOverlay.js').TileOverlayOptions} spec The overlay.
   * @return {FeaturesOverlay|TileOverlay} The overlay (`remove()` with `removeLayer`).
   */
  addLayer(spec) {
    if (!spec || typeof spec !== 'object') {
      throw new TypeError('addLayer needs {type, ...}');
    }
    const context = {node: this.node, key: this.key, projection: this.projection,
      matrixSet: this.matrixSet, capabilities: this.capabilities};
    const overlay = spec.type === 'features' ? new FeaturesOverlay(spec, context)
      : new TileOverlay(spec, context);
    this.overlays_.add(overlay);
    this.map.addLayer(overlay.getLibLayer());
    this.watchTiles_(overlay.getLibLayer());
    overlay.ready.catch((err) => this.fail_(err));
    return overlay;
  }

  /** @param {FeaturesOverlay|TileOverlay} overlay An overlay of this map. */
  removeLayer(overlay) {
    if (this.overlays_.delete(overlay)) {
      this.map.removeLayer(overlay.getLibLayer());
    }
  }

  /**
   * @param {'marker'|'line'|'polygon'|'circle'} kind What.
   * @param {Object} spec Geometry and options.
   * @return {Graphic} It.
   * @private
   */
  addGraphic_(kind, spec) {
    const graphic = new Graphic(kind, geometryOf(kind, spec), spec, this.projection);
    graphic.remover_ = (g) => {
      this.graphics.removeFeature(g.feature);
      graphic.remover_ = null;
    };
    this.graphics.addFeature(graphic.feature);
    return graphic;
  }

  /**
   * A marker; clicking it opens its popup (`popup`, else `title`).
   * @param {{position: Array<number>} & import('./Graphic.js').GraphicOptions} spec Where.
   * @return {Graphic} The marker.
   */
  addMarker(spec) {
    return this.addGraphic_('marker', spec);
  }

  /**
   * @param {{path: Array<Array<number>>} & import('./Graphic.js').GraphicOptions} spec Line.
   * @return {Graphic} The line.
   */
  addLine(spec) {
    return this.addGraphic_('line', spec);
  }

  /**
   * @param {{rings?: Array<Array<Array<number>>>, path?: Array<Array<number>>} &
   *     import('./Graphic.js').GraphicOptions} spec Polygon (outer ring first).
   * @return {Graphic} The polygon.
   */
  addPolygon(spec) {
    return this.addGraphic_('polygon', spec);
  }

  /**
   * @param {{center: Array<number>, radius: number} & import('./Graphic.js').GraphicOptions}
   *     spec A circle, radius in metres on the ground.
   * @return {Graphic} The circle.
   */
  addCircle(spec) {
    return this.addGraphic_('circle', spec);
  }

  /**
   * Opens the popup.
   * @param {Array<number>} lngLat Where.
   * @param {string|Node} content Text (never parsed as HTML) or a node.
   */
  openPopup(lngLat, content) {
    this.popup.open(fromLonLat(checkLngLat(lngLat), this.projection), content);
  }

  closePopup() {
    this.popup.close();
  }

  /** @return {Array<number>} The visible box [minLon, minLat, maxLon, maxLat]. */
  getBounds() {
    const extent = this.map.getView().calculateExtent(this.map.getSize());
    return transformExtent(extent, this.projection, 'EPSG:4326');
  }

  /** Detaches the map from its element. */
  destroy() {
    this.map.setTarget(undefined);
    this.dispose();
  }
}
