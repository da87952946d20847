/**
 * @module geoplat/overlays/FeaturesOverlay
 * An OGC API Features collection as a vector layer: all pages of the query, following the
 * node's `next` links (which carry the key), up to `maxFeatures`.
 */
import Observable from 'ol/Observable.js';
import GeoJSON from 'ol/format/GeoJSON.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import {getJson} from '../http.js';
import {itemsUrl, normaliseNode} from '../urls.js';
import {toStyle} from '../style.js';

/**
 * @typedef {Object} FeaturesOptions
 * @property {'features'} type
 * @property {string} collection Collection id on the node.
 * @property {string} [node] Base URL of the node serving it (default: the map's node).
 * @property {string} [filter] CQL2 text filter.
 * @property {Array<number>} [bbox] [minLon, minLat, maxLon, maxLat].
 * @property {import('../style.js').StyleOptions|Function} [style] The style.
 * @property {string|Function|false} [popup] Property shown in the popup on click (default
 *     `name`), or a function(properties) returning text or a node; false: no popup.
 * @property {number} [maxFeatures] Stop after this many (default 10000).
 * @property {number} [pageSize] Items per request (default 500).
 */

/**
 * Every feature of a query, page by page.
 * @param {string} firstUrl The first page.
 * @param {number} maxFeatures Upper bound.
 * @return {Promise<{features: Array<Object>, numberMatched: (number|undefined)}>} GeoJSON
 *     features.
 */
export async function fetchAllPages(firstUrl, maxFeatures) {
  const features = [];
  let url = firstUrl;
  let numberMatched;
  const seen = new Set();
  while (url && features.length < maxFeatures && !seen.has(url)) {
    seen.add(url);
    const page = await getJson(url);
    if (numberMatched === undefined && Number.isInteger(page.numberMatched)) {
      numberMatched = page.numberMatched;
    }
    const got = Array.isArray(page.features) ? page.features : [];
    features.push(...got.slice(0, maxFeatures - features.length));
    const next = (page.links || []).find((l) => l.rel === 'next' && l.href);
    url = got.length > 0 && next ? new URL(next.href, url).toString() : null;
  }
  return {features, numberMatched};
}

export default class FeaturesOverlay extends Observable {
  /**
   * @param {FeaturesOptions} options The layer.
   * @param {{node: string, key?: string, projection: import('ol/proj/Projection.js').default}}
   *     context The map's node, key and projection.
   */
  constructor(options, context) {
    super();
    this.options = options;
    this.node = normaliseNode(options.node || context.node);
    this.url = itemsUrl(this.node, options.collection, {bbox: options.bbox,
      filter: options.filter, limit: options.pageSize ?? 500, key: context.key});
    this.source = new VectorSource();
    this.layer = new VectorLayer({source: this.source, style: toStyle(options.style),
      properties: {geoplat: 'features'}});
    this.layer.set('geoplatOverlay', this);
    const format = new GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: context.projection});
    /** @type {number|undefined} */
    this.numberMatched = undefined;
    /** Resolves with the features once all pages are in; rejects with a GeoplatError. */
    this.ready = fetchAllPages(this.url, options.maxFeatures ?? 10000).then((result) => {
      this.numberMatched = result.numberMatched;
      const features = format.readFeatures({type: 'FeatureCollection',
        features: result.features});
      this.source.addFeatures(features);
      this.dispatchEvent({type: 'load', count: features.length});
      return features;
    });
  }

  /** @return {number} Features loaded. */
  getCount() {
    return this.source.getFeatures().length;
  }

  /** @return {Array<Object>} Properties of the loaded features. */
  getProperties() {
    return this.source.getFeatures().map((f) => {
      const p = {...f.getProperties()};
      delete p.geometry;
      return p;
    });
  }

  /**
   * Popup content of a feature, or null.
   * @param {import('ol/Feature.js').default} feature A feature of this layer.
   * @return {string|Node|null} The content.
   */
  popupContent(feature) {
    const popup = this.options.popup ?? 'name';
    if (popup === false) {
      return null;
    }
    const props = {...feature.getProperties()};
    delete props.geometry;
    if (typeof popup === 'function') {
      return popup(props);
    }
    const value = props[popup];
    return value === undefined || value === null ? null : String(value);
  }

  /** @return {VectorLayer} The OpenLayers layer. */
  getLibLayer() {
    return this.layer;
  }
}
