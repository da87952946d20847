// URL building: the key in every URL, CQL2 text encoded intact, ids checked
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {capabilitiesUrl, itemsUrl, nodeFromScriptUrl, nodeUrl, placesUrl, vectorTileTemplate,
  withKey} from '../src/urls.js';

const NODE = 'http://127.0.0.1:8000';

test('the node is where the script came from', () => {
  assert.equal(nodeFromScriptUrl('http://127.0.0.1:8000/sdk/geoplat.js'), NODE);
  assert.equal(nodeFromScriptUrl('http://127.0.0.1:8000/sdk/geoplat.esm.js?x=1#y'), NODE);
  assert.equal(nodeFromScriptUrl('https://gis.example.gov.cn/map/sdk/geoplat.js'),
    'https://gis.example.gov.cn/map');
  assert.equal(nodeFromScriptUrl('http://127.0.0.1:8100/api?v=4.0&tk=abc'),
    'http://127.0.0.1:8100');
  assert.equal(nodeFromScriptUrl(''), '');
});

test('the key goes into every URL, replacing one it had', () => {
  assert.equal(withKey(`${NODE}/wmts?a=1`, 'k1'), `${NODE}/wmts?a=1&tk=k1`);
  assert.equal(withKey(`${NODE}/x?tk=old&b=2`, 'new'), `${NODE}/x?tk=new&b=2`);
  assert.equal(withKey(`${NODE}/x`, ''), `${NODE}/x`);
  assert.equal(capabilitiesUrl(NODE, 'k'), `${NODE}/wmts/1.0.0/WMTSCapabilities.xml?tk=k`);
  assert.equal(withKey(`${NODE}/x`, 'a&b=c'), `${NODE}/x?tk=a%26b%3Dc`);
});

test('CQL2 text arrives intact: quotes, %, &, #, +, Han characters', () => {
  const filter = "name LIKE '%市民中心%' AND category = 'a&b#c+d'";
  const url = new URL(itemsUrl(NODE, 'poi', {filter, key: 'k', limit: 100}));
  assert.equal(url.pathname, '/ogc/collections/poi/items');
  assert.equal(url.searchParams.get('filter'), filter);
  assert.equal(url.searchParams.get('tk'), 'k');
  assert.equal(url.searchParams.get('f'), 'json');
  assert.equal(url.searchParams.get('limit'), '100');
  assert.ok(!url.search.includes("'"), 'quotes are percent-encoded');
  assert.ok(!url.search.includes('#'));
});

test('bbox, and bad ids or limits are refused before any request', () => {
  const url = new URL(itemsUrl(NODE, 'poi', {bbox: [120.1, 30.2, 120.3, 30.3]}));
  assert.equal(url.searchParams.get('bbox'), '120.1,30.2,120.3,30.3');
  assert.throws(() => itemsUrl(NODE, '../admin', {}), /collection id/);
  assert.throws(() => itemsUrl(NODE, 'poi?x=1', {}), /collection id/);
  assert.throws(() => itemsUrl(NODE, 'poi', {bbox: [1, 2, 3]}), /bbox/);
  assert.throws(() => itemsUrl(NODE, 'poi', {bbox: [1, 2, 3, NaN]}), /bbox/);
  assert.throws(() => itemsUrl(NODE, 'poi', {limit: 0}), /limit/);
  assert.throws(() => itemsUrl(NODE, 'poi', {filter: {op: '='}}), /CQL2 text/);
  assert.throws(() => nodeUrl('javascript:alert(1)', '/x'), /http/);
});

test('place-name URLs: the services, the key, a division name encoded in the path', () => {
  const s = new URL(placesUrl(NODE, 'search', {q: '市民中心', near: '120.2,30.2', radius: 500,
    limit: undefined}, 'k'));
  assert.equal(s.pathname, '/api/places/search');
  assert.equal(s.searchParams.get('q'), '市民中心');
  assert.equal(s.searchParams.get('radius'), '500');
  assert.equal(s.searchParams.has('limit'), false);
  assert.equal(s.searchParams.get('tk'), 'k');
  const a = new URL(placesUrl(NODE, 'admin/杭州/../x', {children: 1}));
  assert.equal(a.pathname, '/api/places/admin/' + encodeURIComponent('杭州/../x'));
  assert.throws(() => placesUrl(NODE, 'openapi', {}), /unknown/);
});

test('vector tiles: the OGC API Tiles template with the key', () => {
  assert.equal(vectorTileTemplate(NODE, 'poi', 'k'),
    `${NODE}/ogc/collections/poi/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt&tk=k`);
});

test('attributions from capabilities are text, escaped for the attribution control', async () => {
  const {attributionOf, escapeHtml} = await import('../src/Basemap.js');
  assert.equal(escapeHtml('<img src=x onerror=alert(1)>&"\''),
    '&#60;img src=x onerror=alert(1)&#62;&#38;&#34;&#39;');
  assert.equal(attributionOf({ServiceIdentification: {Title: '国家 <b>', AccessConstraints: 'a&b'}}),
    '国家 &#60;b&#62; · a&#38;b');
  assert.equal(attributionOf({}), undefined);
});
