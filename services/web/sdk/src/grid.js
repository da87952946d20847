/**
 * @module geoplat/grid
 * Tile grid arithmetic of the e-map: levels numbered as the WMTS matrix ids (Tianditu's
 * TILEMATRIX), resolutions from the capabilities' scale denominators (0.28 mm pixel).
 *
 * The SDK takes its grid from the node's capabilities; the constants here only give the view
 * a shape while they load, and let tests say what the `c` and `w` grids must be.
 */

/** OGC's standardized rendering pixel size, metres (WMTS 1.0.0, 6.1). */
export const PIXEL_SIZE = 0.28e-3;

/** Metres per degree on the CGCS2000/WGS84 equator, as proj4 derives it from the WKT. */
export const METERS_PER_DEGREE = 111319.4907932736;

/** Half the width of the Web Mercator world, metres. */
export const MERCATOR_HALF = 20037508.342789244;

/** The `c` grid (EPSG:4490): level n has 1.40625 / 2^n deg/px, origin (-180, 90). */
export const C_GRID = {crs: 'EPSG:4490', level0: 1.40625, origin: [-180, 90], tileSize: 256};

/** The `w` grid (EPSG:3857): level n has 2 * 20037508.34 / 256 / 2^n m/px, origin top left. */
export const W_GRID = {crs: 'EPSG:3857', level0: (2 * MERCATOR_HALF) / 256,
  origin: [-MERCATOR_HALF, MERCATOR_HALF], tileSize: 256};

/**
 * The grid of a map CRS.
 * @param {string} crs `EPSG:4490` or `EPSG:3857`.
 * @return {{crs: string, level0: number, origin: Array<number>, tileSize: number}} The grid.
 */
export function gridOf(crs) {
  if (crs === 'EPSG:4490') {
    return C_GRID;
  }
  if (crs === 'EPSG:3857') {
    return W_GRID;
  }
  throw new TypeError(`crs must be "EPSG:4490" or "EPSG:3857", got ${JSON.stringify(crs)}`);
}

/**
 * The WMTS tile matrix set of a map CRS.
 * @param {string} crs `EPSG:4490` or `EPSG:3857`.
 * @return {string} `c` or `w`.
 */
export function matrixSetOf(crs) {
  return gridOf(crs) === C_GRID ? 'c' : 'w';
}

/**
 * Resolution (CRS units per pixel) of a WMTS scale denominator.
 * @param {number} scaleDenominator From the capabilities.
 * @param {number} metersPerUnit Of the CRS (1 for metres).
 * @return {number} The resolution.
 */
export function resolutionOf(scaleDenominator, metersPerUnit) {
  return (scaleDenominator * PIXEL_SIZE) / metersPerUnit;
}

/**
 * The level a matrix id names (`01` -> 1, `c:5` -> 5).
 * @param {string} matrixId The id.
 * @return {number} The level (NaN if the id is not a number).
 */
export function levelOf(matrixId) {
  const m = /(\d+)$/.exec(String(matrixId));
  return m ? parseInt(m[1], 10) : NaN;
}

/**
 * Resolutions indexed by level number, from a grid's matrix ids and resolutions: a view built
 * on them has zoom n = matrix level n (Tianditu's numbering). Levels the grid lacks below its
 * first are filled by doubling (a view needs them; no tile is asked at them).
 * @param {Array<string>} matrixIds The grid's ids, coarsest first.
 * @param {Array<number>} resolutions Their resolutions.
 * @return {Array<number>} Resolutions, index = level.
 */
export function resolutionsByLevel(matrixIds, resolutions) {
  if (matrixIds.length !== resolutions.length || matrixIds.length === 0) {
    throw new Error('matrix ids and resolutions differ in number');
  }
  const first = levelOf(matrixIds[0]);
  if (!Number.isInteger(first)) {
    throw new Error(`matrix id ${matrixIds[0]} is not a level number`);
  }
  const out = [];
  for (let level = 0; level < first; ++level) {
    out.push(resolutions[0] * 2 ** (first - level));
  }
  matrixIds.forEach((id, i) => {
    if (levelOf(id) !== first + i) {
      throw new Error(`matrix ids are not consecutive levels at ${id}`);
    }
    out.push(resolutions[i]);
  });
  return out;
}

/**
 * Resolutions of a grid by level, from its level-0 resolution.
 * @param {{level0: number}} grid A grid constant.
 * @param {number} [maxLevel] Finest level (default 20).
 * @return {Array<number>} Resolutions, index = level.
 */
export function defaultResolutions(grid, maxLevel = 20) {
  return Array.from({length: maxLevel + 1}, (_, z) => grid.level0 / 2 ** z);
}

/**
 * The tile (column, row) holding a point at a level, counted from the grid's top-left origin.
 * @param {{level0: number, origin: Array<number>, tileSize: number}} grid The grid.
 * @param {number} level The level.
 * @param {Array<number>} xy The point in the grid's CRS (x = lon for EPSG:4490).
 * @return {Array<number>} [column, row].
 */
export function tileOf(grid, level, xy) {
  const span = (grid.level0 / 2 ** level) * grid.tileSize;
  return [Math.floor((xy[0] - grid.origin[0]) / span), Math.floor((grid.origin[1] - xy[1]) / span)];
}

/**
 * Checks a grid read from capabilities against what a map in this CRS expects: the level-1
 * resolution and the origin; a mismatch is a node misconfiguration worth an error event.
 * @param {{crs: string, level0: number, origin: Array<number>}} grid The expected grid.
 * @param {Array<number>} byLevel Resolutions by level from the capabilities.
 * @param {Array<number>} origin The capabilities' origin (x, y) at level 1.
 * @return {string|null} What differs, or null.
 */
export function gridMismatch(grid, byLevel, origin) {
  const expected = grid.level0 / 2;
  if (byLevel.length < 2 || Math.abs(byLevel[1] - expected) / expected > 1e-9) {
    return `level 1 is ${byLevel[1]} units/px, expected ${expected}`;
  }
  const tol = grid.crs === 'EPSG:4490' ? 1e-9 : 1e-3;
  if (Math.abs(origin[0] - grid.origin[0]) > tol || Math.abs(origin[1] - grid.origin[1]) > tol) {
    return `origin is ${origin}, expected ${grid.origin}`;
  }
  return null;
}
