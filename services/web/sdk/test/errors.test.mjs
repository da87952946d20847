// The server's problem detail travels into the rejected promise / error event
import assert from 'node:assert/strict';
import {test} from 'node:test';
import GeoplatError, {problemFromResponse, stripKey} from '../src/GeoplatError.js';

test('problem+json gives status, title and detail', async () => {
  const r = new Response(JSON.stringify({type: 'about:blank', title: 'Invalid key',
    detail: 'This API key is unknown or revoked.', status: 403}),
  {status: 403, headers: {'content-type': 'application/problem+json'}});
  const e = await problemFromResponse(r, 'http://n/x?tk=secret&a=1');
  assert.ok(e instanceof GeoplatError);
  assert.equal(e.status, 403);
  assert.equal(e.title, 'Invalid key');
  assert.equal(e.detail, 'This API key is unknown or revoked.');
  assert.equal(e.url, 'http://n/x?tk=***&a=1', 'the key is not repeated in messages');
});

test('a body that is not a problem still gives the status', async () => {
  const e = await problemFromResponse(new Response('<html>oops</html>',
    {status: 429, statusText: 'Too Many Requests', headers: {'content-type': 'text/html'}}), 'u');
  assert.equal(e.status, 429);
  assert.equal(e.title, 'Too Many Requests');
  const bad = await problemFromResponse(new Response('{not json',
    {status: 500, headers: {'content-type': 'application/json'}}), 'u');
  assert.equal(bad.status, 500);
});

test('stripKey masks every tk', () => {
  assert.equal(stripKey('http://a/b?tk=1&c=2&tk=3'), 'http://a/b?tk=***&c=2&tk=***');
});
