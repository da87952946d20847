// Builds the SDK with esbuild (pinned in the project's package.json); `make install` runs it.
//   dist/geoplat.js      UMD: global `Geoplat` as a plain <script>, AMD and CommonJS too
//   dist/geoplat.esm.js  ES module (`import {Map} from "http://NODE/sdk/geoplat.esm.js"`)
//   dist/tianditu.js     when src/tianditu/index.js exists: an IIFE with the SDK inside. It
//                        declares no global itself: src/tianditu/index.js sets `globalThis.T`
//                        (and Tianditu's other globals, TMAP_*), reading the key and node from
//                        `globalThis.GEOPLAT_TIANDITU = {key, node, v}`, which the node's
//                        `/api?v=4.0&tk=KEY` writes before this bundle (services/web/sdk_routes.py).
//   dist/hall.js         the service-hall map page's script (src/apps/hall.js, an IIFE using
//                        the global `Geoplat` of geoplat.js, which the page loads first)
//   dist/cadastre.js     the cadastral map page's script (src/apps/cadastre.js), likewise
//   dist/portal.js       the portal's script (`/`, src/apps/portal/index.js), likewise
//   dist/status.js       the service-status page's script (`/status`, src/apps/status/index.js)
//   dist/catalogue.js    the catalogue page's script (`/catalogue`, src/apps/catalogue/index.js)
//   dist/geoplat.d.ts    TypeScript declarations from the JSDoc (tsc --allowJs --declaration).
// Usage: node build.mjs [--no-types]
import {execFileSync} from 'node:child_process';
import {existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const dist = join(here, 'dist');
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version || '0';

const UMD_HEAD = `(function (root, factory) {
  if (typeof define === 'function' && define.amd) { define([], factory); }
  else if (typeof module === 'object' && module.exports) { module.exports = factory(); }
  else { root.Geoplat = factory(); }
}(typeof self !== 'undefined' ? self : this, function () {
var module = {exports: {}}, exports = module.exports;`;
const UMD_TAIL = 'return module.exports;\n}));';

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ['es2020'],
  legalComments: 'eof',
  logLevel: 'warning',
  define: {'process.env.NODE_ENV': '"production"'},
  loader: {'.css': 'text'},
};

// tsc --outFile names each module by its path under src/ ("Map", "overlays/TileOverlay") but
// leaves some re-exports relative ("./Map.js"), which an ambient module cannot resolve (they
// would be `any`): name them as the modules are named.
function resolveAmbient(dts) {
  let current = '';
  return dts.split('\n').map((line) => {
    const m = /^declare module "([^"]+)" \{/.exec(line);
    if (m) {
      current = m[1];
    }
    return line.replace(/(from |import\()"(\.{1,2}\/[^"]+?)(\.js)?"/g, (_, kw, spec) => {
      const base = current.includes('/') ? current.slice(0, current.lastIndexOf('/') + 1) : '';
      const parts = (base + spec).split('/');
      const out = [];
      for (const part of parts) {
        if (part === '..') {
          out.pop();
        } else if (part !== '.') {
          out.push(part);
        }
      }
      return `${kw}"${out.join('/')}"`;
    });
  }).join('\n');
}

async function build() {
  mkdirSync(dist, {recursive: true});
  const tmp = join(dist, '.tmp');
  rmSync(tmp, {recursive: true, force: true});
  mkdirSync(tmp);
  await esbuild.build({...common, entryPoints: [join(here, 'src', 'umd.js')], format: 'cjs',
    platform: 'browser', banner: {js: UMD_HEAD}, footer: {js: UMD_TAIL},
    outfile: join(tmp, 'geoplat.js')});
  await esbuild.build({...common, entryPoints: [join(here, 'src', 'esm.js')], format: 'esm',
    outfile: join(tmp, 'geoplat.esm.js')});
  const tianditu = join(here, 'src', 'tianditu', 'index.js');
  if (existsSync(tianditu)) {
    await esbuild.build({...common, entryPoints: [tianditu], format: 'iife',
      outfile: join(tmp, 'tianditu.js')});
  }
  for (const app of ['hall', 'cadastre']) {
    await esbuild.build({...common, entryPoints: [join(here, 'src', 'apps', `${app}.js`)],
      format: 'iife', outfile: join(tmp, `${app}.js`)});
  }
  await esbuild.build({...common, entryPoints: [join(here, 'src', 'apps', 'portal', 'index.js')],
    format: 'iife', outfile: join(tmp, 'portal.js')});
  for (const app of ['status', 'catalogue']) {
    await esbuild.build({...common, entryPoints: [join(here, 'src', 'apps', app, 'index.js')],
      format: 'iife', outfile: join(tmp, `${app}.js`)});
  }
  if (!process.argv.includes('--no-types')) {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '--allowJs', '--declaration', '--emitDeclarationOnly',
      '--skipLibCheck', '--target', 'es2020', '--module', 'es2020', '--moduleResolution',
      'bundler', '--outFile', join(tmp, 'geoplat.d.ts'), join(here, 'src', 'index.js')],
    {stdio: 'inherit'});
    const dts = resolveAmbient(readFileSync(join(tmp, 'geoplat.d.ts'), 'utf8'));
    writeFileSync(join(tmp, 'geoplat.d.ts'),
      `// geoplat SDK ${version}: declarations generated from the JSDoc of src/\n` + dts +
      '\ndeclare module "geoplat" {\n    export * from "index";\n}\n');
  }
  // replace the old files only once everything built
  for (const name of ['geoplat.js', 'geoplat.esm.js', 'tianditu.js', 'hall.js', 'cadastre.js',
    'portal.js', 'status.js', 'catalogue.js', 'geoplat.d.ts']) {
    if (existsSync(join(tmp, name))) {
      renameSync(join(tmp, name), join(dist, name));
    } else if (name === 'tianditu.js') {
      rmSync(join(dist, name), {force: true});
    }
  }
  rmSync(tmp, {recursive: true, force: true});
}

build().catch((err) => {
  console.error(err);
  process.exit(1);
});
