// The draw-query's pure parts (src/apps/portal/selection.js): the filter of a drawn area, a
// circle on the ellipsoid, statistics (areas and lengths against pyproj.Geod(ellps='GRS80'),
// CGCS2000's ellipsoid; grouped sums) and the exports (CSV escaping, formula injection, WKT)
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {destination, distance, ringArea} from '../src/apps/portal/geodesic.js';
import {MU_M2, circlePolygon, csvCell, intersectsFilter, measure, statistics, toCsv, toGeoJson,
  toWkt} from '../src/apps/portal/selection.js';

const close = (got, want, rel) => assert.ok(Math.abs(got - want) / Math.abs(want) < rel,
  `${got} vs ${want}`);
const square = (x0, y0, x1, y1) => [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];

test('the direct geodesic problem equals pyproj.Geod.fwd', () => {
  const [lon, lat] = destination(120.2, 30.25, 45, 1500);
  close(lon, 120.21102165594736, 1e-11);
  close(lat, 30.259567381303565, 1e-11);
  const far = destination(120.2, 30.25, 200, 25000);
  close(far[0], 120.11134749830033, 1e-11);
  close(far[1], 30.0380504474147, 1e-11);
});

test('a circle is a closed polygon of points at the radius on the ellipsoid', () => {
  const circle = circlePolygon([120.2, 30.25], 500, 72);
  const ring = circle.coordinates[0];
  assert.equal(circle.type, 'Polygon');
  assert.equal(ring.length, 73);
  assert.deepEqual(ring[0], ring[72]);
  for (const [lon, lat] of ring) {
    close(distance(120.2, 30.25, lon, lat), 500, 1e-8);  // 5 µm
  }
  // a 72-gon inscribed in the circle: its area is 0.13 % below pi r²
  close(ringArea(ring), 72 / 2 * 500 ** 2 * Math.sin(2 * Math.PI / 72), 1e-4);
});

test('the filter is pygeoapi GET text (ECQL INTERSECTS) with rounded lon/lat', () => {
  const f = intersectsFilter('geom', {type: 'Polygon',
    coordinates: [square(120.123456789, 30.1, 120.2, 30.2)]});
  assert.equal(f, 'INTERSECTS(geom, POLYGON((120.1234568 30.1, 120.2 30.1, 120.2 30.2, ' +
    '120.1234568 30.2, 120.1234568 30.1)))');
  assert.match(intersectsFilter('the geom', {type: 'MultiPolygon',
    coordinates: [[square(0, 0, 1, 1)]]}), /^INTERSECTS\("the geom", MULTIPOLYGON\(\(\(0 0,/);
});

test('areas (holes out) and lengths equal pyproj.Geod', () => {
  const outer = square(120.1, 30.2, 120.11, 30.21);
  const hole = square(120.102, 30.202, 120.104, 30.204);
  close(measure({type: 'Polygon', coordinates: [outer]}).area, 1067402.152528286, 1e-6);
  close(measure({type: 'Polygon', coordinates: [outer, hole]}).area,
    1067402.152528286 - 42696.93631339073, 1e-6);
  close(measure({type: 'MultiPolygon', coordinates: [[outer], [hole]]}).area,
    1067402.152528286 + 42696.93631339073, 1e-6);
  close(measure({type: 'LineString', coordinates: [[120.1, 30.2], [120.2, 30.2],
    [120.2, 30.3]]}).length, 20714.888234142527, 1e-9);
  assert.deepEqual(measure({type: 'Point', coordinates: [120, 30]}), {area: 0, length: 0});
  assert.deepEqual(measure(null), {area: 0, length: 0});
});

test('statistics: count, area in m², ha and 亩, sums and averages grouped by a field', () => {
  const sq = {type: 'Polygon', coordinates: [square(120.1, 30.2, 120.11, 30.21)]};
  const features = [
    {id: 1, geometry: sq, properties: {use: 'R', area_m2: 100, floors: 3}},
    {id: 2, geometry: sq, properties: {use: 'B', area_m2: 50.5, floors: null}},
    {id: 3, geometry: sq, properties: {use: 'R', area_m2: '20', floors: 5}},
    {id: 4, geometry: null, properties: {use: null, area_m2: 'n/a', floors: 1}},
  ];
  const s = statistics(features, {groupBy: 'use', numeric: ['area_m2', 'floors']});
  assert.equal(s.count, 4);
  close(s.area, 3 * 1067402.152528286, 1e-6);
  close(s.hectares, s.area / 10000, 1e-12);
  close(s.mu, s.area / (2000 / 3), 1e-12);
  assert.equal(MU_M2, 10000 / 15);
  assert.equal(s.sums.area_m2, 170.5);
  assert.equal(s.averages.floors, 3);  // (3 + 5 + 1) / 3: a null is not a zero
  assert.deepEqual(s.groups.map((g) => [g.key, g.count, g.sums.area_m2, g.averages.floors]),
    [['', 1, 0, 1], ['B', 1, 50.5, null], ['R', 2, 120, 4]]);
  assert.equal(statistics([]).count, 0);
});

test('CSV cells: quoted when needed, formulas disarmed', () => {
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('two\nlines'), '"two\nlines"');
  assert.equal(csvCell('=HYPERLINK("http://x","y")'), '"\'=HYPERLINK(""http://x"",""y"")"');
  assert.equal(csvCell('=1+2'), "'=1+2");
  assert.equal(csvCell('+86 571'), "'+86 571");
  assert.equal(csvCell('-2+3'), "'-2+3");
  assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvCell('\tx'), "'\tx");
  assert.equal(csvCell(-12.5), '-12.5');  // a number is a number
  assert.equal(csvCell(null), '');
  assert.equal(csvCell(undefined), '');
  assert.equal(csvCell(true), 'true');
  assert.equal(csvCell({a: 1}), '"{""a"":1}"');
  assert.equal(csvCell('宗地 1'), '宗地 1');
});

test('CSV and GeoJSON exports', () => {
  const features = [
    {id: 'p1', geometry: {type: 'Point', coordinates: [120.5, 30.25]},
      properties: {name: '=cmd|calc', n: 3}},
    {id: 'p2', geometry: {type: 'Polygon', coordinates: [square(0, 0, 1, 1)]},
      properties: {name: 'x, y', n: null}},
  ];
  assert.equal(toCsv(features, ['name', 'n']), 'id,name,n,wkt\r\n' +
    "p1,'=cmd|calc,3,POINT (120.5 30.25)\r\n" +
    'p2,"x, y",,"POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"\r\n');
  const fc = JSON.parse(toGeoJson(features));
  assert.equal(fc.type, 'FeatureCollection');
  assert.deepEqual(fc.features[1], {type: 'Feature', ...features[1]});
  assert.equal(toWkt({type: 'MultiLineString', coordinates: [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]}),
    'MULTILINESTRING ((0 0, 1 1), (2 2, 3 3))');
  assert.equal(toWkt({type: 'MultiPoint', coordinates: [[0, 0], [1, 1]]}),
    'MULTIPOINT ((0 0), (1 1))');
});
