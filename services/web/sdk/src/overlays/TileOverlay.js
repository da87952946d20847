/**
 * @module geoplat/overlays/TileOverlay
 * Tiled overlays: vector tiles (MVT from OGC API Tiles), WMS images, WMTS layers of a node.
 */
import Observable from 'ol/Observable.js';
import MVT from 'ol/format/MVT.js';
import WMSCapabilities from 'ol/format/WMTSCapabilities.js';
import TileLayer from 'ol/layer/Tile.js';
import VectorTileLayer from 'ol/layer/VectorTile.js';
import TileWMS from 'ol/source/TileWMS.js';
import VectorTileSource from 'ol/source/VectorTile.js';
import {wmtsSource} from '../Basemap.js';
import {getText} from '../http.js';
import {capabilitiesUrl, nodeUrl, normaliseNode, vectorTileTemplate} from '../urls.js';
import {toStyle} from '../style.js';

/**
 * @typedef {Object} TileOverlayOptions
 * @property {'vectortiles'|'wms'|'wmts'} type
 * @property {string} [collection] `vectortiles`: the collection id.
 * @property {string} [layer] `wmts`/`wms`: the layer name(s).
 * @property {string} [node] Base URL of the node (default: the map's).
 * @property {string} [url] `wms`: a WMS endpoint other than the node's `/wms`.
 * @property {number} [opacity] 0..1.
 * @property {import('../style.js').StyleOptions|Function} [style] `vectortiles`: the style.
 */

const TYPES = ['vectortiles', 'wms', 'wmts'];

export default class TileOverlay extends Observable {
  /**
   * @param {TileOverlayOptions} options The layer.
   * @param {{node: string, key?: string, projection: import('ol/proj/Projection.js').default,
   *     matrixSet: string, capabilities?: Object}} context The map's node, key, projection.
   */
  constructor(options, context) {
    super();
    if (!TYPES.includes(options.type)) {
      throw new TypeError(`unknown layer type ${JSON.stringify(options.type)}`);
    }
    this.options = options;
    this.node = normaliseNode(options.node || context.node);
    const key = context.key;
    const opacity = options.opacity ?? 1;
    if (options.type === 'vectortiles') {
      // the nodes serve MVT in WebMercatorQuad only, and OpenLayers cannot reproject vector
      // tiles: in a c-grid map use a features overlay
      if (context.projection.getCode() !== 'EPSG:3857') {
        throw new TypeError('vector tiles are WebMercatorQuad: use them in a map with crs ' +
          '"EPSG:3857", or a {type: "features"} overlay in EPSG:4490');
      }
      this.source = new VectorTileSource({format: new MVT(),
        url: vectorTileTemplate(this.node, options.collection, key)});
      this.layer = new VectorTileLayer({source: this.source, opacity,
        style: toStyle(options.style)});
      this.ready = Promise.resolve(this);
    } else if (options.type === 'wms') {
      if (typeof options.layer !== 'string' || !options.layer) {
        throw new TypeError('a wms layer needs `layer`');
      }
      const url = options.url || nodeUrl(this.node, '/wms', {}, key);
      this.source = new TileWMS({url, params: {LAYERS: options.layer, VERSION: '1.3.0',
        FORMAT: 'image/png', TRANSPARENT: true}, projection: context.projection,
        crossOrigin: null});
      this.layer = new TileLayer({source: this.source, opacity});
      this.ready = Promise.resolve(this);
    } else {
      if (typeof options.layer !== 'string' || !options.layer) {
        throw new TypeError('a wmts layer needs `layer`');
      }
      this.layer = new TileLayer({opacity});
      const caps = this.node === context.node && context.capabilities
        ? Promise.resolve(context.capabilities)
        : getText(capabilitiesUrl(this.node, key)).then((t) => new WMSCapabilities().read(t));
      this.ready = caps.then((capabilities) => {
        const source = wmtsSource(capabilities, options.layer, context.matrixSet,
          context.projection);
        if (!source) {
          throw new Error(`the node has no WMTS layer ${options.layer} in ${context.matrixSet}`);
        }
        this.source = source;
        this.layer.setSource(source);
        this.dispatchEvent('sourceready');
        return this;
      });
    }
    this.layer.set('geoplatOverlay', this);
  }

  /** @return {import('ol/layer/Base.js').default} The OpenLayers layer. */
  getLibLayer() {
    return this.layer;
  }
}
