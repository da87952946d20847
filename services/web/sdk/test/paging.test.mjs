// Features are read page by page along the node's `next` links (a real loopback HTTP server)
import assert from 'node:assert/strict';
import {createServer} from 'node:http';
import {after, before, test} from 'node:test';
import {fetchAllPages} from '../src/overlays/FeaturesOverlay.js';
import {features} from '../src/services.js';

let server;
let base;
const asked = [];

before(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url, base);
    asked.push(url);
    if (url.pathname === '/loop') { // a next link back to itself must not loop forever
      res.setHeader('content-type', 'application/geo+json');
      res.end(JSON.stringify({features: [{type: 'Feature', properties: {}, geometry: null}],
        links: [{rel: 'next', href: `${base}/loop`}]}));
      return;
    }
    if (url.pathname === '/ogc/collections/nope/items') {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/problem+json');
      res.end(JSON.stringify({title: 'Not Found', detail: 'No collection nope.', status: 404}));
      return;
    }
    const offset = Number(url.searchParams.get('offset') || 0);
    const limit = Number(url.searchParams.get('limit'));
    const total = 23;
    const n = Math.max(0, Math.min(limit, total - offset));
    const page = {type: 'FeatureCollection', numberMatched: total, features: Array.from(
      {length: n}, (_, i) => ({type: 'Feature', id: offset + i, properties: {n: offset + i},
        geometry: {type: 'Point', coordinates: [120, 30]}})), links: []};
    if (offset + n < total) {
      const next = new URL(url);
      next.searchParams.set('offset', String(offset + n));
      page.links.push({rel: 'next', href: next.toString()});
    }
    res.setHeader('content-type', 'application/geo+json');
    res.end(JSON.stringify(page));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test('every page is read, with the key and filter the first URL carried', async () => {
  asked.length = 0;
  const got = await features('poi', {node: base, key: 'k1', filter: "a = 'x'",
    maxFeatures: 100});
  assert.equal(got.features.length, 23);
  assert.equal(got.numberMatched, 23);
  assert.deepEqual(got.features.map((f) => f.properties.n), [...Array(23).keys()]);
  assert.ok(asked.every((u) => u.searchParams.get('tk') === 'k1'));
  assert.ok(asked.every((u) => u.searchParams.get('filter') === "a = 'x'"));
});

test('maxFeatures bounds what is read, and a looping next link ends', async () => {
  asked.length = 0;
  const first = new URL(`${base}/ogc/collections/poi/items?limit=5&f=json`);
  const got = await fetchAllPages(first.toString(), 7);
  assert.equal(got.features.length, 7);
  assert.equal(asked.length, 2);
  const loop = await fetchAllPages(`${base}/loop`, 1000);
  assert.equal(loop.features.length, 1);
});

test('a refusal rejects with the problem detail', async () => {
  await assert.rejects(features('nope', {node: base}), (e) =>
    e.name === 'GeoplatError' && e.status === 404 && e.detail === 'No collection nope.');
});
