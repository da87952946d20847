// EPSG:4490 from its WKT: metres per degree, axis order, and transforms that keep x = lon
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {get as getProjection, transform} from 'ol/proj.js';
import {CGCS2000, CGCS2000_WKT, gaussKruger, parseCGCS2000, registerCGCS2000} from '../src/proj.js';

test('proj4 reads the WKT: CGCS2000 ellipsoid, 111319.49 m per degree, axis neu', () => {
  const def = parseCGCS2000();
  assert.equal(def.ellipsoid.a, 6378137);
  assert.equal(def.ellipsoid.rf, 298.257222101);
  assert.ok(Math.abs(def.toMeter - 111319.4907932736) < 1e-6);
  assert.equal(def.axis, 'neu');
  assert.match(CGCS2000_WKT, /AUTHORITY\["EPSG","4490"\]\]$/);
});

test('the OpenLayers projection has them, for every name the capabilities may use', () => {
  const p = registerCGCS2000();
  assert.equal(p.getCode(), CGCS2000);
  assert.equal(p.getUnits(), 'degrees');
  assert.equal(p.getAxisOrientation(), 'neu');
  assert.ok(Math.abs(p.getMetersPerUnit() - 111319.4907932736) < 1e-6);
  assert.deepEqual(p.getExtent(), [-180, -90, 180, 90]);
  for (const code of ['urn:ogc:def:crs:EPSG:4490', 'urn:ogc:def:crs:EPSG::4490']) {
    assert.equal(getProjection(code), p, code);
  }
  assert.equal(registerCGCS2000(), p, 'registering twice gives the same projection');
});

test('transforms take and give lon, lat (the neu axis is for OGC requests only)', () => {
  registerCGCS2000();
  const [x, y] = transform([120.14, 30.25], 'EPSG:4490', 'EPSG:3857');
  assert.ok(Math.abs(x - 13373923.62) < 0.1, `x=${x}`);
  assert.ok(Math.abs(y - 3535725.66) < 0.1, `y=${y}`);
  const back = transform([x, y], 'EPSG:3857', 'EPSG:4490');
  assert.ok(Math.abs(back[0] - 120.14) < 1e-9 && Math.abs(back[1] - 30.25) < 1e-9);
  // CGCS2000 and WGS 84 agree at the centimetre level: GeoJSON (CRS84) is read as is
  const w = transform([120.14, 30.25], 'EPSG:4326', 'EPSG:4490');
  assert.ok(Math.abs(w[0] - 120.14) < 1e-7 && Math.abs(w[1] - 30.25) < 1e-7);
});

test('Gauss-Krüger coordinates equal pyproj (CGCS2000 3-degree zones)', () => {
  // Transformer.from_crs(4490, EPSG, always_xy=True).transform(lon, lat): (easting, northing)
  for (const [lon, lat, epsg, east, north] of [
    [120.2130, 30.2460, 'EPSG:4549', 520500.7236012893, 3347402.80418528],
    [116.3975, 39.9087, 'EPSG:4548', 448481.5745837002, 4419565.435326066],
    [87.6168, 43.8256, 'EPSG:4538', 549615.9011100462, 4854629.626615686]]) {
    const g = gaussKruger(lon, lat);
    assert.equal(g.epsg, epsg);
    assert.ok(Math.abs(g.y - east) < 0.001 && Math.abs(g.x - north) < 0.001, JSON.stringify(g));
  }
  assert.throws(() => gaussKruger(10, 50), RangeError);
});
