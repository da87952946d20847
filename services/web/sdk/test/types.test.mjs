// dist/geoplat.d.ts (tsc from the JSDoc) type-checks a page's TypeScript: `make sdk` first
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dts = join(here, '..', 'dist', 'geoplat.d.ts');
const root = join(here, '..', '..', '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function check(source) {
  const dir = mkdtempSync(join(tmpdir(), 'geoplat-dts-'));
  try {
    writeFileSync(join(dir, 'page.ts'), `/// <reference path=${JSON.stringify(dts)} />\n${source}`);
    execFileSync(process.execPath, [tsc, '--noEmit', '--target', 'es2020', '--module', 'es2020',
      '--moduleResolution', 'bundler', '--skipLibCheck', '--baseUrl', join(root, 'node_modules'),
      join(dir, 'page.ts')], {encoding: 'utf8', stdio: 'pipe'});
    return '';
  } catch (err) {
    return String(err.stdout || err);
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

test('the declarations describe the SDK as pages use it', () => {
  assert.ok(existsSync(dts), 'dist/geoplat.d.ts is missing: run `make sdk`');
  assert.equal(check(`import {Map, search, GeoplatError} from "geoplat";
const map = new Map('map', {key: 'k', crs: 'EPSG:4490', basemap: 'img', center: [120, 30]});
map.addLayer({type: 'features', collection: 'poi', filter: "a = 'b'"});
map.addMarker({position: [120, 30], title: 'x'});
map.fitBounds([120, 30, 121, 31]);
const e: GeoplatError | null = map.lastError;
map.getLibMap().getView();
search('x', {key: 'k'});`), '');
});

test('and refuse what the SDK does not take', () => {
  assert.match(check(`import {Map} from "geoplat";
new Map('map', {crs: 'EPSG:4326'});`), /EPSG:4326/);
  assert.match(check(`import {Map} from "geoplat";
new Map('map', {basemap: 'sat'});`), /sat/);
});
