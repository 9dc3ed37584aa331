#!/usr/bin/env node
// Bundles the desktop app into app-dist/ (or --out <dir>), ready for `electron app-dist` and for
// scripts/release.mjs, which packages it with electron-builder:
//
//   main.mjs             the main process (electron/main.ts), ESM
//   preload.cjs          the preload (electron/preload.ts), CommonJS: a sandboxed preload is a
//                        classic script whose require() knows only 'electron' and a few others
//   training-worker.mjs  the training worker (src/app/training-worker.ts), run by utilityProcess
//   renderer/            index.html (with the app's content security policy from
//                        electron/window-options.ts), styles.css and main.js (renderer/src/main.ts)
//   package.json         name, version, entry, and the native dependencies left out of the bundles
//
// Only bundling: it needs neither the Electron binary nor the network.

import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const clientDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(clientDir, 'package.json'));

/**
 * Packages the bundles load at run time from app-dist/node_modules: native code (a .node binary
 * and the libraries beside it) cannot be bundled. 'electron' is the runtime itself. The packaged
 * app gets these from package.json below; optional ones may be missing (msgpackr falls back to JS).
 */
const NATIVE = { 'onnxruntime-node': 'required', 'msgpackr-extract': 'optional' };
/** Optional native helpers of ws (under socket.io-client); ws works without them. */
const OPTIONAL_UNBUNDLED = ['bufferutil', 'utf-8-validate'];
const EXTERNAL = ['electron', ...Object.keys(NATIVE), ...OPTIONAL_UNBUNDLED];

/** Electron 45: Chromium 140, Node 22. */
const NODE_TARGET = 'node22';
const CHROME_TARGET = 'chrome140';

// ESM bundles of CommonJS packages call require() for Node's built-ins; give them one.
const ESM_REQUIRE_BANNER =
  "import { createRequire as __feditCreateRequire } from 'node:module';\n" +
  'const require = __feditCreateRequire(import.meta.url);';

function installedVersion(name) {
  try {
    return require(`${name}/package.json`).version;
  } catch {
    return undefined;
  }
}

/** CONTENT_SECURITY_POLICY from electron/window-options.ts (types-only imports: it bundles alone). */
async function contentSecurityPolicy() {
  const result = await esbuild.build({
    entryPoints: [join(clientDir, 'electron/window-options.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    logLevel: 'warning',
  });
  const source = result.outputFiles[0].text;
  const module = await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
  return module.CONTENT_SECURITY_POLICY;
}

/** index.html with the app's policy in its CSP <meta> tag (the page's own allows the dev shell's socket). */
function withAppPolicy(html, policy) {
  const meta = /(<meta\s+http-equiv="Content-Security-Policy"\s+content=")[^"]*(")/i;
  if (!meta.test(html)) {
    throw new Error(
      'renderer/index.html has no <meta http-equiv="Content-Security-Policy" content="…"> to set',
    );
  }
  return html.replace(meta, (_match, before, after) => `${before}${policy}${after}`);
}

/** Builds the app into `outDir`; answers the files written, relative to it. */
export async function buildApp({ outDir = join(clientDir, 'app-dist'), sourcemap = false } = {}) {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const common = { bundle: true, sourcemap, logLevel: 'warning', legalComments: 'none', metafile: true };
  const node = {
    ...common,
    platform: 'node',
    target: NODE_TARGET,
    external: EXTERNAL,
    // The workspace packages resolve to their TypeScript sources, as under tsx.
    conditions: ['source'],
  };
  const builds = [
    {
      ...node,
      entryPoints: [join(clientDir, 'electron/main.ts')],
      outfile: join(outDir, 'main.mjs'),
      format: 'esm',
      banner: { js: ESM_REQUIRE_BANNER },
    },
    {
      ...node,
      entryPoints: [join(clientDir, 'src/app/training-worker.ts')],
      outfile: join(outDir, 'training-worker.mjs'),
      format: 'esm',
      banner: { js: ESM_REQUIRE_BANNER },
    },
    {
      ...common,
      entryPoints: [join(clientDir, 'electron/preload.ts')],
      outfile: join(outDir, 'preload.cjs'),
      platform: 'node',
      target: [NODE_TARGET, CHROME_TARGET],
      format: 'cjs',
      external: ['electron'],
    },
    {
      ...common,
      entryPoints: [join(clientDir, 'renderer/src/main.ts')],
      outfile: join(outDir, 'renderer/main.js'),
      platform: 'browser',
      target: CHROME_TARGET,
      format: 'esm',
    },
  ];
  const results = await Promise.all(builds.map((options) => esbuild.build(options)));

  const html = await readFile(join(clientDir, 'renderer/index.html'), 'utf8');
  await writeFile(join(outDir, 'renderer/index.html'), withAppPolicy(html, await contentSecurityPolicy()));
  await copyFile(join(clientDir, 'renderer/styles.css'), join(outDir, 'renderer/styles.css'));

  const client = JSON.parse(await readFile(join(clientDir, 'package.json'), 'utf8'));
  const dependencies = {};
  const optionalDependencies = {};
  for (const [name, need] of Object.entries(NATIVE)) {
    const version = installedVersion(name);
    if (version) (need === 'required' ? dependencies : optionalDependencies)[name] = version;
    else if (need === 'required') throw new Error(`${name} is not installed: run npm ci first`);
  }
  const manifest = {
    name: 'fedit',
    productName: 'fedit',
    version: client.version,
    description: 'Take part in a fedit federation: train a shared language model on your own data.',
    license: client.license,
    author: { name: 'The fedit contributors' },
    type: 'module',
    main: 'main.mjs',
    dependencies,
    optionalDependencies,
  };
  await writeFile(join(outDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  const outputs = results.flatMap((r) => Object.keys(r.metafile.outputs));
  return [
    ...outputs.map((o) => relative(outDir, resolve(o))),
    'renderer/index.html',
    'renderer/styles.css',
    'package.json',
  ].sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, sourcemap: { type: 'boolean', default: false } },
  });
  const outDir = values.out ? resolve(values.out) : undefined;
  const started = Date.now();
  const files = await buildApp({ outDir, sourcemap: values.sourcemap });
  const where = relative(process.cwd(), outDir ?? join(clientDir, 'app-dist')) || '.';
  console.log(`built the desktop app into ${where} in ${Date.now() - started} ms:`);
  for (const file of files) console.log(`  ${file}`);
}
