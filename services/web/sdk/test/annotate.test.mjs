// The portal's links back to the same view and its share links (src/apps/portal/links.js)
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {MAX_NEXT, annotationDoc, authLink, backTo, noteToken, shareUrl}
  from '../src/apps/portal/links.js';

const loc = (pathname, search, hash) => ({pathname, search, hash});

test('sign-in comes back to the path, query and hash', () => {
  const here = loc('/', '?note=abcdefghijklmnopqrstuvwxyz_-0123', '#c=120.1,30.2&z=12&l=poi:1');
  assert.equal(backTo(here), '/?note=abcdefghijklmnopqrstuvwxyz_-0123#c=120.1,30.2&z=12&l=poi:1');
  const link = authLink('/auth/login', here);
  assert.ok(link.startsWith('/auth/login?next='));
  assert.equal(new URLSearchParams(link.split('?')[1]).get('next'), backTo(here));
  assert.ok(!link.includes('#'), 'the hash is encoded inside next, not the link\'s own');
  const long = loc('/', '', '#' + 'x'.repeat(MAX_NEXT));
  assert.equal(backTo(long), '/', 'too long for the node: the path alone');
});

test('share tokens are read only when they are tokens', () => {
  const token = 'A'.repeat(30) + '_-';
  assert.equal(noteToken(`?note=${token}`), token);
  assert.equal(noteToken('?note=short'), null);
  assert.equal(noteToken('?note=' + encodeURIComponent('<img src=x>'.padEnd(32, 'a'))), null);
  assert.equal(noteToken(''), null);
  assert.equal(shareUrl('http://n.example', token), `http://n.example/?note=${token}`);
});

test('the body of a save is a GeoJSON Feature', () => {
  const point = {type: 'Point', coordinates: [120, 30]};
  assert.deepEqual(annotationDoc(point, ' T ', 'n\n'),
    {type: 'Feature', geometry: point, properties: {title: 'T', note: 'n'}});
  assert.deepEqual(annotationDoc(null, 'T', ''), {type: 'Feature',
    properties: {title: 'T', note: ''}});
});
