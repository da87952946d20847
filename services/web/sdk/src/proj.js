/**
 * @module geoplat/proj
 * EPSG:4490 (CGCS2000) for OpenLayers, registered from its WKT through proj4.
 *
 * proj4's WKT parser gives the unit's metres per degree on the CGCS2000 ellipsoid
 * (0.0174532925199433 x 6378137 = 111319.49 m) and the axis order of the AXIS[] entries
 * (`neu`). OpenLayers needs both: the metres per unit turn the WMTS scale denominators into
 * degrees per pixel, the axis order swaps the TopLeftCorner of the capabilities and the WMS
 * 1.3.0 BBOX. A proj4 *string* (`+proj=longlat +ellps=GRS80`) has neither and OpenLayers
 * would fall back to 111194.87 m per degree on the sphere: a 0.1 % error that grows into a
 * tile offset at high levels.
 */
import proj4 from 'proj4';
import {addCoordinateTransforms, addProjection, get as getProjection} from 'ol/proj.js';
import Projection from 'ol/proj/Projection.js';
import {PROJECTIONS as MERCATOR} from 'ol/proj/epsg3857.js';
import {PROJECTIONS as LONLAT} from 'ol/proj/epsg4326.js';

/** The CRS code of CGCS2000 geographic coordinates. */
export const CGCS2000 = 'EPSG:4490';

/**
 * EPSG's definition of CGCS2000 in OGC WKT 1. The axes are named `Lat`/`Lon` (as GDAL's WKT 1
 * writes them) rather than EPSG's `Latitude`/`Longitude`: proj4's WKT 1 parser recognises only
 * those names, and would read the axis order as `enu`. Its WKT 2 parser reads the axes but
 * gives no metres per degree, so WKT 1 it is (test/proj.test.mjs checks both values).
 */
export const CGCS2000_WKT =
  'GEOGCS["China Geodetic Coordinate System 2000",' +
  'DATUM["China_2000",SPHEROID["CGCS2000",6378137,298.257222101,AUTHORITY["EPSG","1024"]],' +
  'AUTHORITY["EPSG","1043"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],' +
  'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],' +
  'AXIS["Lat",NORTH],AXIS["Lon",EAST],AUTHORITY["EPSG","4490"]]';

/** The world in EPSG:4490 (lon/lat: OpenLayers' coordinates are x, y whatever the axis). */
export const CGCS2000_EXTENT = [-180, -90, 180, 90];

/**
 * The parsed WKT: what proj4 makes of it.
 * @return {{toMeter: number, axis: string, ellipsoid: {a: number, rf: number}}} Its metres
 *     per degree, axis order and ellipsoid.
 */
export function parseCGCS2000() {
  const def = proj4.Proj(CGCS2000_WKT);
  return {toMeter: def.to_meter, axis: def.axis, ellipsoid: {a: def.a, rf: def.rf}};
}

/**
 * Registers EPSG:4490 with OpenLayers (once; later calls return the same projection).
 * @return {Projection} The projection.
 */
export function registerCGCS2000() {
  const known = getProjection(CGCS2000);
  if (known && known.getMetersPerUnit() > 111300) {
    return known;
  }
  const parsed = parseCGCS2000();
  // proj4 itself must see lon, lat in transforms (OpenLayers always hands it x = lon): the
  // `neu` of the WKT is given to the OpenLayers projection, where it means the OGC axis order
  const def = proj4.Proj(CGCS2000_WKT);
  def.axis = 'enu';
  proj4.defs(CGCS2000, def);
  const projection = new Projection({
    code: CGCS2000,
    units: 'degrees',
    axisOrientation: parsed.axis,
    metersPerUnit: parsed.toMeter,
    extent: CGCS2000_EXTENT,
    worldExtent: CGCS2000_EXTENT,
    global: true,
  });
  addProjection(projection);
  // transforms to the projections OpenLayers knows (Web Mercator, WGS 84 lon/lat and their
  // aliases), computed by proj4. Not `register(proj4)` of ol/proj/proj4: it pairs every
  // definition proj4 ships (120 UTM zones among them), some 17,000 transforms, which took
  // 250 ms of a page's start in headless chromium (bench/web.py)
  for (const [others, code] of [[MERCATOR, 'EPSG:3857'], [LONLAT, 'EPSG:4326']]) {
    const t = proj4(def, proj4.defs(code));
    for (const other of others) {
      addCoordinateTransforms(projection, other, (c) => t.forward([c[0], c[1]]),
        (c) => t.inverse([c[0], c[1]]));
    }
  }
  return projection;
}

/** @type {Object<number, Object>} proj4 converters to the Gauss-Krüger zones, by meridian */
const GK = {};

/**
 * The CGCS2000 3-degree Gauss-Krüger coordinate of a point (EPSG:4534-4554, "CGCS2000 /
 * 3-degree Gauss-Kruger CM 75E" to "CM 135E": false easting 500 km, no zone prefix), in the
 * zone whose central meridian is nearest; computed by proj4 on the CGCS2000 ellipsoid.
 * @param {number} lon Longitude (CGCS2000), 73.5 to 136.5.
 * @param {number} lat Latitude.
 * @return {{zone: number, meridian: number, epsg: string, x: number, y: number}} `x` the
 *     northing and `y` the easting, in metres (surveying's X and Y).
 */
export function gaussKruger(lon, lat) {
  const zone = Math.round(lon / 3);
  if (!(zone >= 25 && zone <= 45) || !Number.isFinite(lat) || Math.abs(lat) > 84) {
    throw new RangeError('outside the CGCS2000 3-degree Gauss-Krüger zones (75E-135E)');
  }
  const meridian = zone * 3;
  GK[meridian] = GK[meridian] || proj4('+proj=longlat +ellps=GRS80 +no_defs',
    `+proj=tmerc +lat_0=0 +lon_0=${meridian} +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 ` +
    '+units=m +no_defs');
  const [east, north] = GK[meridian].forward([lon, lat]);
  return {zone, meridian, epsg: `EPSG:${4534 + zone - 25}`, x: north, y: east};
}
