// Grid math of the c (EPSG:4490) and w (EPSG:3857) grids: node --test
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {C_GRID, METERS_PER_DEGREE, W_GRID, defaultResolutions, gridMismatch, gridOf, levelOf,
  matrixSetOf, resolutionOf, resolutionsByLevel, tileOf} from '../src/grid.js';

test('level 1 of the c grid is 0.703125 deg/px, level n halves it', () => {
  const r = defaultResolutions(C_GRID, 20);
  assert.equal(r[1], 0.703125);
  assert.equal(r[18], 1.40625 / 2 ** 18);
  assert.equal(r.length, 21);
});

test("the node's scale denominators (0.28 mm pixel) give the c grid with proj4's metres per degree", () => {
  // ScaleDenominator of TileMatrix 01 in the node's capabilities (MapProxy, OGC standard pixel)
  assert.ok(Math.abs(resolutionOf(279541132.01435894, METERS_PER_DEGREE) - 0.703125) < 1e-12);
  // the sphere's 111194.87 m per degree would be 0.1 % off: a tile off at level 10 over Hangzhou
  const wrong = resolutionOf(279541132.01435894, 111194.87);
  assert.ok(Math.abs(wrong - 0.703125) / 0.703125 > 1e-3);
});

test('the w grid: level 0 is the whole Web Mercator world in one 256 px tile', () => {
  assert.ok(Math.abs(resolutionOf(559082264.0287176, 1) - W_GRID.level0) < 1e-6);
  assert.equal(W_GRID.level0 * 256, 2 * 20037508.342789244);
});

test('matrix ids name levels: "01" is 1, "c:5" is 5', () => {
  assert.equal(levelOf('01'), 1);
  assert.equal(levelOf('c:5'), 5);
  assert.ok(Number.isNaN(levelOf('top')));
});

test('view resolutions are indexed by level whatever level the grid starts at', () => {
  const ids = ['01', '02', '03'];
  const res = [0.703125, 0.3515625, 0.17578125];
  assert.deepEqual(resolutionsByLevel(ids, res), [1.40625, 0.703125, 0.3515625, 0.17578125]);
  assert.deepEqual(resolutionsByLevel(['00', '01'], [1.40625, 0.703125]), [1.40625, 0.703125]);
  assert.throws(() => resolutionsByLevel(['01', '03'], [1, 0.25]), /consecutive/);
  assert.throws(() => resolutionsByLevel(['01'], [1, 2]), /differ/);
});

test('West Lake at level 12 of the c grid is tile (col 3414, row 679), as Tianditu numbers it', () => {
  // col = floor((120.14 + 180) / (256 * 1.40625 / 2^12)), row = floor((90 - 30.25) / ...)
  assert.deepEqual(tileOf(C_GRID, 12, [120.14, 30.25]), [3414, 679]);
});

test('level 1 is 2 x 1 tiles in c, level 0 of w is 1 x 1', () => {
  assert.deepEqual(tileOf(C_GRID, 1, [179.9, -89.9]), [1, 0]);
  assert.deepEqual(tileOf(W_GRID, 0, [20037508, -20037508]), [0, 0]);
});

test('crs -> grid and matrix set; anything else is refused', () => {
  assert.equal(gridOf('EPSG:4490'), C_GRID);
  assert.equal(matrixSetOf('EPSG:4490'), 'c');
  assert.equal(matrixSetOf('EPSG:3857'), 'w');
  assert.throws(() => gridOf('EPSG:4326'), /EPSG:4490/);
});

test('gridMismatch names what capabilities contradict', () => {
  assert.equal(gridMismatch(C_GRID, defaultResolutions(C_GRID), [-180, 90]), null);
  assert.match(gridMismatch(C_GRID, [1.40625, 0.7], [-180, 90]), /level 1/);
  assert.match(gridMismatch(C_GRID, defaultResolutions(C_GRID), [90, -180]), /origin/);
});
