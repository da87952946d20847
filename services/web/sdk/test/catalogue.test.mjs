// The catalogue page's pure parts: a record's service URL and where it opens in the portal
// (the hash ../src/apps/portal/share.js reads back), and the extent field
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {mapLink, parseBbox, serviceUrl, zoomFor} from '../src/apps/catalogue/links.js';
import {readView} from '../src/apps/portal/share.js';

const FALLBACK = {center: [0, 0], zoom: 3, grid: 'w', basemap: 'img', labels: false, layers: []};

function record(type, href, layer, bbox = [120, 30, 120.4, 30.4]) {
  return {id: 'x', type: 'Feature', bbox: undefined, properties: {type, layer_id: layer},
    geometry: {type: 'Polygon', coordinates: [[[bbox[0], bbox[1]], [bbox[2], bbox[1]],
      [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]},
    links: [{rel: 'service', href, type}]};
}

test('a feature collection opens in its node\'s portal with the layer shown', () => {
  const link = mapLink(record('OGCAPI-Features', 'http://127.0.0.1:9/ogc/collections/poi',
    'poi'));
  const [base, hash] = link.split('/#');
  assert.equal(base, 'http://127.0.0.1:9');
  const view = readView('#' + hash, FALLBACK);
  assert.deepEqual(view.layers, [{id: 'poi', opacity: 1}]);
  assert.deepEqual(view.center, [120.2, 30.2]);
  assert.equal(view.grid, 'c');
  assert.equal(view.zoom, zoomFor([120, 30, 120.4, 30.4]));
  // vector tiles of the same layer, a node under a path
  const tiles = mapLink(record('OGCAPI-Tiles', 'https://n.example/gis/ogc/collections/roads/tiles',
    'roads'));
  assert.ok(tiles.startsWith('https://n.example/gis/#'));
  assert.deepEqual(readView(tiles.slice(tiles.indexOf('#')), FALLBACK).layers,
    [{id: 'roads', opacity: 1}]);
});

test('e-map layers open as the base map; others cannot open', () => {
  const wmts = mapLink(record('WMTS', 'http://h:1/wmts/1.0.0/WMTSCapabilities.xml', 'cia'));
  assert.ok(wmts.startsWith('http://h:1/#'));
  const view = readView(wmts.slice(wmts.indexOf('#')), FALLBACK);
  assert.equal(view.basemap, 'img');
  assert.deepEqual(view.layers, []);
  const wms = mapLink(record('WMS', 'http://h:1/wms?SERVICE=WMS&REQUEST=GetCapabilities', 'ter'));
  assert.equal(readView(wms.slice(wms.indexOf('#')), FALLBACK).basemap, 'ter');
  assert.equal(mapLink(record('WMS', 'http://h:1/wms?SERVICE=WMS', 'composite_a')), null);
  assert.equal(mapLink(record('WMS', 'http://ext.example/cgi?SERVICE=WMS', null)), null);
  // a collection URL naming another layer than the record, a script URL
  assert.equal(mapLink(record('OGCAPI-Features', 'http://h/ogc/collections/a', 'b')), null);
  assert.equal(mapLink(record('OGCAPI-Features', 'javascript:alert(1)//ogc/collections/a',
    'a')), null);
  assert.equal(serviceUrl(record('WMS', 'javascript:alert(1)', 'vec')), null);
  const node = mapLink(record('node', 'http://127.0.0.1:5/', null));
  assert.ok(node.startsWith('http://127.0.0.1:5/#c='));
});

test('the service URL is the record\'s service link', () => {
  const href = 'http://h:1/wmts/1.0.0/WMTSCapabilities.xml';
  assert.equal(serviceUrl(record('WMTS', href, 'vec')), href);
  assert.equal(serviceUrl({links: []}), null);
  assert.equal(serviceUrl({}), null);
});

test('the extent field', () => {
  assert.equal(parseBbox('  '), undefined);
  assert.deepEqual(parseBbox('120.1, 30.2,120.3 30.4'), [120.1, 30.2, 120.3, 30.4]);
  assert.equal(parseBbox('120,30,119,31'), null);
  assert.equal(parseBbox('1,2,3'), null);
  assert.equal(parseBbox('0,0,200,10'), null);
  assert.ok(zoomFor([73, 18, 135, 54]) < zoomFor([120, 30, 120.01, 30.01]));
});
