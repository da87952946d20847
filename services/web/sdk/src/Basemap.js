/**
 * @module geoplat/Basemap
 * The e-map base layers of a node (vec/img/ter and their annotations cva/cia/cta), as WMTS
 * tile layers built from the node's capabilities with OpenLayers' `optionsFromCapabilities`.
 */
import TileLayer from 'ol/layer/Tile.js';
import WMTS, {optionsFromCapabilities} from 'ol/source/WMTS.js';
import {resolutionsByLevel} from './grid.js';

/** Base map names and their annotation layers (Tianditu's pairs). */
export const BASEMAPS = {vec: 'cva', img: 'cia', ter: 'cta'};

/**
 * Checks a base map name.
 * @param {string} name `vec`, `img` or `ter`.
 * @return {string} The name.
 */
export function checkBasemap(name) {
  if (!Object.prototype.hasOwnProperty.call(BASEMAPS, name)) {
    throw new TypeError(`basemap must be one of ${Object.keys(BASEMAPS).join(', ')}, ` +
      `got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Text for OpenLayers' attribution control, which writes attributions as HTML: escaped.
 * @param {unknown} text Plain text.
 * @return {string} HTML showing that text.
 */
export function escapeHtml(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The attribution of a node's e-map: its capabilities' title and access constraints.
 * @param {Object} capabilities Parsed WMTS capabilities.
 * @return {string|undefined} HTML (escaped text).
 */
export function attributionOf(capabilities) {
  const id = capabilities && capabilities.ServiceIdentification;
  if (!id) {
    return undefined;
  }
  return [id.Title, id.AccessConstraints].filter(Boolean).map(escapeHtml).join(' · ') ||
    undefined;
}

/**
 * A WMTS source of one capabilities layer in one matrix set, or null if the capabilities
 * lack it.
 * @param {Object} capabilities Parsed by ol/format/WMTSCapabilities.
 * @param {string} layer Layer identifier.
 * @param {string} matrixSet `c` or `w`.
 * @param {import('ol/proj/Projection.js').default} projection The map's projection.
 * @param {string} [crossOrigin] For tiles whose pixels the page may read.
 * @return {WMTS|null} The source.
 */
export function wmtsSource(capabilities, layer, matrixSet, projection, crossOrigin) {
  const options = optionsFromCapabilities(capabilities, {layer, matrixSet, projection});
  if (!options) {
    return null;
  }
  options.crossOrigin = crossOrigin === undefined ? null : crossOrigin;
  options.attributions = attributionOf(capabilities);
  options.wrapX = projection.getCode() === 'EPSG:3857';
  // no fade-in: OpenLayers' 250 ms opacity transition delays rendercomplete by as much, and
  // base maps of government sites (Tianditu's too) show tiles at once
  options.transition = 0;
  return new WMTS(options);
}

/**
 * The view resolutions of a matrix set (index = level), from a source's tile grid.
 * @param {WMTS} source A source of that matrix set.
 * @return {Array<number>} Resolutions by level.
 */
export function viewResolutions(source) {
  const grid = /** @type {import('ol/tilegrid/WMTS.js').default} */ (source.getTileGrid());
  return resolutionsByLevel(grid.getMatrixIds(), grid.getResolutions());
}

/**
 * The base map of a map: one base and one annotation tile layer, switched in place.
 */
export default class Basemap {
  /**
   * @param {Object} capabilities Parsed WMTS capabilities.
   * @param {string} matrixSet `c` or `w`.
   * @param {import('ol/proj/Projection.js').default} projection The map projection.
   * @param {{name: string, labels: boolean, crossOrigin?: string}} options Initial state.
   */
  constructor(capabilities, matrixSet, projection, options) {
    this.capabilities_ = capabilities;
    this.matrixSet_ = matrixSet;
    this.projection_ = projection;
    this.crossOrigin_ = options.crossOrigin;
    /** @type {Object<string, WMTS>} */
    this.sources_ = {};
    this.base = new TileLayer({zIndex: -20, properties: {geoplat: 'basemap'}});
    this.labels = new TileLayer({zIndex: -10, properties: {geoplat: 'labels'}});
    this.name_ = '';
    this.setName(options.name);
    this.labels.setVisible(options.labels);
  }

  /**
   * The source of a layer (made once).
   * @param {string} layer Layer identifier.
   * @return {WMTS} The source.
   */
  source(layer) {
    if (!this.sources_[layer]) {
      const source = wmtsSource(this.capabilities_, layer, this.matrixSet_, this.projection_,
        this.crossOrigin_);
      if (!source) {
        throw new Error(`the node's capabilities have no layer ${layer} in matrix set ` +
          `${this.matrixSet_}`);
      }
      this.sources_[layer] = source;
    }
    return this.sources_[layer];
  }

  /** @return {string} The base map shown. */
  getName() {
    return this.name_;
  }

  /**
   * Shows another base map (and its annotation layer).
   * @param {string} name `vec`, `img` or `ter`.
   */
  setName(name) {
    checkBasemap(name);
    this.base.setSource(this.source(name));
    this.labels.setSource(this.source(BASEMAPS[name]));
    this.name_ = name;
  }

  /** @return {Array<TileLayer>} The layers, base first. */
  getLayers() {
    return [this.base, this.labels];
  }
}
