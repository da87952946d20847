/**
 * @module geoplat/olparts
 * The OpenLayers classes the SDK bundles, re-exported (internal API: layers built on the SDK
 * use these instead of bundling OpenLayers again).
 */
export {default as Map} from 'ol/Map.js';
export {default as View} from 'ol/View.js';
export {default as Feature} from 'ol/Feature.js';
export {default as Overlay} from 'ol/Overlay.js';
export {default as Observable} from 'ol/Observable.js';
export {default as BaseObject} from 'ol/Object.js';
export {default as Collection} from 'ol/Collection.js';
export {default as TileLayer} from 'ol/layer/Tile.js';
export {default as VectorLayer} from 'ol/layer/Vector.js';
export {default as VectorTileLayer} from 'ol/layer/VectorTile.js';
export {default as VectorSource} from 'ol/source/Vector.js';
export {default as WMTS} from 'ol/source/WMTS.js';
export {default as TileWMS} from 'ol/source/TileWMS.js';
export {default as XYZ} from 'ol/source/XYZ.js';
export {default as GeoJSON} from 'ol/format/GeoJSON.js';
export {default as WMTSCapabilities} from 'ol/format/WMTSCapabilities.js';
export {default as Point} from 'ol/geom/Point.js';
export {default as LineString} from 'ol/geom/LineString.js';
export {default as Polygon, circular, fromExtent} from 'ol/geom/Polygon.js';
export {default as Circle} from 'ol/geom/Circle.js';
export {default as Style} from 'ol/style/Style.js';
export {default as Icon} from 'ol/style/Icon.js';
export {default as CircleStyle} from 'ol/style/Circle.js';
export {default as Fill} from 'ol/style/Fill.js';
export {default as Stroke} from 'ol/style/Stroke.js';
export {default as Text} from 'ol/style/Text.js';
export {default as Zoom} from 'ol/control/Zoom.js';
export {default as ScaleLine} from 'ol/control/ScaleLine.js';
export {default as Attribution} from 'ol/control/Attribution.js';
export {default as OverviewMap} from 'ol/control/OverviewMap.js';
export {default as Control} from 'ol/control/Control.js';
export {default as Draw, createBox} from 'ol/interaction/Draw.js';
export {default as Modify} from 'ol/interaction/Modify.js';
export {default as MultiPolygon} from 'ol/geom/MultiPolygon.js';
export {fromLonLat, toLonLat, transform, transformExtent, get as getProjection} from 'ol/proj.js';
export {getDistance} from 'ol/sphere.js';
export {boundingExtent, containsCoordinate, getCenter as getExtentCenter} from 'ol/extent.js';
export {unByKey} from 'ol/Observable.js';
