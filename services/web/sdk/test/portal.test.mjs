// The portal's pure parts: geodesic figures (against pyproj.Geod(ellps='GRS80'), CGCS2000's
// ellipsoid) and the view in the URL's hash
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {distance, pathLength, ringArea} from '../src/apps/portal/geodesic.js';
import {readView, writeView} from '../src/apps/portal/share.js';

const close = (got, want, rel) => assert.ok(Math.abs(got - want) / want < rel,
  `${got} vs ${want}`);

test('distances equal pyproj.Geod', () => {
  // Geod(ellps='GRS80').inv(...)[2]
  close(distance(120.2130, 30.2460, 120.16, 30.28), 6341.826692461265, 1e-9);
  close(distance(116.4, 39.9, 121.47, 31.23), 1065615.4565739399, 1e-9);
  assert.equal(distance(120, 30, 120, 30), 0);
  close(pathLength([[120.2130, 30.2460], [120.16, 30.28], [120.2130, 30.2460]]),
    2 * 6341.826692461265, 1e-9);
});

test('areas equal pyproj.Geod', () => {
  // abs(Geod(ellps='GRS80').polygon_area_perimeter(lons, lats)[0])
  close(ringArea([[120.1, 30.2], [120.3, 30.2], [120.3, 30.35], [120.1, 30.35]]),
    319997213.44989014, 1e-6);
  close(ringArea([[120.1, 30.35], [120.3, 30.35], [120.3, 30.2], [120.1, 30.2], [120.1, 30.35]]),
    319997213.44989014, 1e-6); // either orientation, closed or not
  close(ringArea([[100, 20], [120, 20], [110, 45]]), 2918003319739.006, 2e-4); // a continent
  assert.equal(ringArea([[120, 30], [121, 30]]), 0);
});

const FALLBACK = {center: [120, 30], zoom: 9, grid: 'c', basemap: 'vec', labels: true, layers: []};

test('a view goes through the hash unchanged', () => {
  const view = {center: [120.2130001, 30.2460002], zoom: 16, grid: 'w', basemap: 'img',
    labels: false, layers: [{id: 'roads', opacity: 1}, {id: 'poi', opacity: 0.5}]};
  const hash = writeView(view);
  assert.equal(hash, '#c=120.2130001,30.2460002&z=16&g=w&b=img&lb=0&l=roads:1,poi:0.5');
  assert.deepEqual(readView(hash, FALLBACK), view);
});

test('what does not parse in a hash falls back', () => {
  const bad = '#c=999,1&z=abc&g=x&b=<img>&l=<script>:1,poi:7,roads:0.3,roads:1';
  const view = readView(bad, FALLBACK);
  assert.deepEqual(view.center, [120, 30]);
  assert.equal(view.zoom, 9);
  assert.equal(view.grid, 'c');
  assert.equal(view.basemap, 'vec');
  assert.deepEqual(view.layers, [{id: 'roads', opacity: 0.3}]);
  assert.deepEqual(readView('', FALLBACK), FALLBACK);
});

test('degrees, minutes, seconds', async () => {
  const {dms} = await import('../src/apps/portal/geodesic.js');
  assert.equal(dms(120.213, 'E', 'W'), '120°12′46.80″E');
  assert.equal(dms(30.246, 'N', 'S'), '30°14′45.60″N');
  assert.equal(dms(-0.5, 'E', 'W'), '0°30′00.00″W');
  assert.equal(dms(29.9999999, 'N', 'S'), '30°00′00.00″N'); // rounding carries
});
