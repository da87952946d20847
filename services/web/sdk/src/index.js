/**
 * @module geoplat
 * The geoplat JavaScript SDK: `Map`, the services and the pieces they are built from.
 *
 * Public API (documented at /sdk/ on every node): Map, search, geocode, reverse, admin,
 * features, setDefaults, GeoplatError, VERSION.
 *
 * Internal API, for the Tianditu JS API 4.0 layer (src/tianditu/, built into tianditu.js with
 * this SDK) and other thin layers; stable within a release, not for pages:
 * - `ol`: the OpenLayers classes the SDK bundles (Map, View, Feature, Overlay, layers, sources,
 *   geometries, styles, controls, the Draw interaction with `createBox`, proj helpers), so a
 *   layer or a page script (src/apps/) adds no second copy;
 * - `registerCGCS2000()`, `CGCS2000`, `CGCS2000_WKT` (src/proj.js);
 * - grid math: `gridOf`, `matrixSetOf`, `resolutionsByLevel`, `defaultResolutions`, `tileOf`,
 *   `levelOf`, `C_GRID`, `W_GRID` (src/grid.js);
 * - URL building with the key: `nodeUrl`, `withKey`, `itemsUrl`, `placesUrl`,
 *   `capabilitiesUrl`, `vectorTileTemplate`, `nodeFromScriptUrl` (src/urls.js);
 * - `getJson`, `getText` (src/http.js: reject with GeoplatError), `problemFromResponse`;
 * - `Basemap`, `BASEMAPS` (vec->cva, img->cia, ter->cta), `wmtsSource`;
 * - `Graphic`, `Popup`, `FeaturesOverlay`, `TileOverlay`, `toStyle`;
 * - a Map's own members: `map.map` (= getLibMap()), `map.projection`, `map.basemap`,
 *   `map.graphics` (VectorSource of graphics), `map.popup`, `map.ready` (Promise), events
 *   `ready`, `rendercomplete`, `moveend`, `click`, `featureclick`, `error`.
 * - `setDefaults({node, key, scriptUrl})`, `defaultNode()`, `defaultKey()`.
 *
 * The Tianditu layer's bundle (dist/tianditu.js, built from src/tianditu/index.js by build.mjs)
 * is an IIFE without a global name of its own: src/tianditu/index.js sets `globalThis.T` (and
 * TMAP_* and the other globals Tianditu pages use). `/api?v=4.0&tk=KEY` runs
 * `globalThis.GEOPLAT_TIANDITU = {key, node, v}` first (services/web/sdk_routes.py): the key of
 * the script URL, and the node's base URL (`document.currentScript.src` works too, through
 * `nodeFromScriptUrl`, which strips `/api`).
 */
import * as ol from './olparts.js';

export {default as Map} from './Map.js';
export {default as GeoplatError, problemFromResponse} from './GeoplatError.js';
export {search, geocode, reverse, admin, features} from './services.js';
export {setDefaults, defaultNode, defaultKey} from './defaults.js';
export {registerCGCS2000, CGCS2000, CGCS2000_WKT, gaussKruger} from './proj.js';
export {gridOf, matrixSetOf, resolutionsByLevel, defaultResolutions, tileOf, levelOf, C_GRID,
  W_GRID} from './grid.js';
export {nodeUrl, withKey, itemsUrl, placesUrl, capabilitiesUrl, vectorTileTemplate,
  nodeFromScriptUrl} from './urls.js';
export {getJson, getText} from './http.js';
export {default as Basemap, BASEMAPS, wmtsSource} from './Basemap.js';
export {default as Graphic} from './Graphic.js';
export {default as Popup} from './Popup.js';
export {default as FeaturesOverlay} from './overlays/FeaturesOverlay.js';
export {default as TileOverlay} from './overlays/TileOverlay.js';
export {toStyle} from './style.js';
export {ol};

/** The SDK's version. */
export const VERSION = '0.1.0';
