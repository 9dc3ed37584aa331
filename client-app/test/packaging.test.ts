// The installers' configuration (electron-builder.config.mjs), checked without building installers
// (that downloads Electron and its packaging tools; scripts/release.mjs does it, never npm test):
// a target for each of Windows, macOS and Linux, on architectures onnxruntime-node has binaries
// for; every native file of onnxruntime-node unpacked from app.asar and the JavaScript kept in it,
// judged by electron-builder's own pattern matcher; the app's entry points packaged (the
// electron-shell test builds them and checks they exist); and the release kept out of `npm test`.

import test from 'ava';
import { existsSync, readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { APP_FILES } from '../electron/channels.ts';

const clientDir = join(dirname(fileURLToPath(import.meta.url)), '..');

interface TargetEntry {
  target: string;
  arch: string[];
}
/** The parts of electron-builder's Configuration this test reads. */
interface BuilderConfig {
  asar: boolean;
  asarUnpack: string[];
  files: string[];
  publish: unknown;
  win: { target: TargetEntry[] };
  mac: { target: TargetEntry[] };
  linux: { target: TargetEntry[] };
}
// The file release.mjs imports, as it is (plain JavaScript, so imported by URL rather than typed).
const config = (
  (await import(pathToFileURL(join(clientDir, 'electron-builder.config.mjs')).href)) as {
    default: BuilderConfig;
  }
).default;
const repoRoot = join(clientDir, '..');
const require = createRequire(join(clientDir, 'package.json'));

type Filter = (file: string, stat: Pick<Stats, 'isDirectory'>) => boolean;
interface FileMatcherClass {
  new (
    from: string,
    to: string,
    expand: (s: string) => string,
    patterns: string[],
  ): {
    createFilter(): Filter;
  };
}
// electron-builder's matcher for `files` and `asarUnpack` (from the app-builder-lib it depends on),
// so the patterns are judged as the release will apply them, not by a re-implementation.
const { FileMatcher } = createRequire(require.resolve('electron-builder'))(
  'app-builder-lib/out/fileMatcher.js',
) as { FileMatcher: FileMatcherClass };

/**
 * The folder scripts/release.mjs packages: the bundles with node_modules beside them. Any path
 * will do (electron-builder matches paths relative to it); nothing is read from it.
 */
const appDir = join(repoRoot, 'staged-app');
const asFile = { isDirectory: () => false };
function matcher(patterns: string[]): (relativePath: string) => boolean {
  const filter = new FileMatcher(appDir, appDir, (s) => s, patterns).createFilter();
  return (relativePath) => filter(join(appDir, ...relativePath.split('/')), asFile);
}

/** Files under `dir`, relative to `base`, with forward slashes. */
function filesUnder(dir: string, base: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => join(dir, entry))
    .filter((path) => statSync(path).isFile())
    .map((path) => relative(base, path).split(sep).join('/'));
}

const onnxDir = dirname(require.resolve('onnxruntime-node/package.json'));
const NATIVE = /\.node$|\.so(\.\d+)*$|\.dylib$|\.dll$/;
/** electron-builder's platform keys -> the <os> folders of onnxruntime-node's bin/napi-v6/<os>/<cpu>. */
const OS_OF = { win: 'win32', mac: 'darwin', linux: 'linux' } as const;

test('there are installers for Windows, macOS and Linux, each for an architecture onnxruntime-node supports', (t) => {
  const expected = { win: ['nsis'], mac: ['dmg'], linux: ['AppImage', 'deb'] };
  for (const platform of ['win', 'mac', 'linux'] as const) {
    const targets = config[platform].target;
    t.deepEqual(
      targets.map((e) => e.target),
      expected[platform],
      `${platform} installers`,
    );
    for (const { target, arch } of targets) {
      t.true(arch.length > 0, `${platform} ${target} names its architectures`);
      for (const cpu of arch) {
        // release.mjs keeps only this folder of onnxruntime-node and fails without it.
        const bin = join(onnxDir, 'bin', 'napi-v6', OS_OF[platform], cpu);
        t.true(existsSync(bin), `onnxruntime-node has binaries for ${platform} ${target} ${cpu}`);
        t.true(readdirSync(bin).includes('onnxruntime_binding.node'), `${bin} holds the Node binding`);
      }
    }
  }
  t.is(config.publish, null, 'the release never uploads anything');
});

test("onnxruntime-node's native files are unpacked from app.asar; its JavaScript stays inside", (t) => {
  t.true(config.asar, 'the app is packed into app.asar');
  const unpacked = matcher(config.asarUnpack);
  const files = filesUnder(onnxDir, repoRoot); // node_modules/onnxruntime-node/..., as in the staged app
  const native = files.filter((f) => NATIVE.test(f));
  // Every platform's binding and the runtime libraries the OS loader opens next to it.
  for (const name of ['onnxruntime_binding.node', 'libonnxruntime.so.1', 'onnxruntime.dll', 'DirectML.dll'])
    t.true(
      native.some((f) => f.endsWith(`/${name}`)),
      `the installed onnxruntime-node has ${name}`,
    );
  t.true(
    native.some((f) => f.endsWith('.dylib')),
    'the installed onnxruntime-node has its macOS library',
  );
  for (const file of native) t.true(unpacked(file), `${file} is unpacked`);

  const javascript = files.filter((f) => f.endsWith('.js'));
  t.true(javascript.length > 0);
  for (const file of javascript) t.false(unpacked(file), `${file} stays in app.asar`);
  for (const file of Object.values(APP_FILES)) t.false(unpacked(file), `${file} stays in app.asar`);
  // Any other package's binary (msgpackr-extract's prebuild) is unpacked too.
  t.true(unpacked('node_modules/@msgpackr-extract/msgpackr-extract-linux-x64/node.abi115.glibc.node'));
});

test("the app's entry points, its page and its manifest are packaged; source maps and typings are not", (t) => {
  const packaged = matcher(config.files);
  // The files scripts/build-app.mjs writes (electron-shell.test.ts builds them and checks each one).
  for (const file of [...Object.values(APP_FILES), 'renderer/main.js', 'renderer/styles.css', 'package.json'])
    t.true(packaged(file), `${file} is packaged`);
  t.false(packaged('main.mjs.map'));
  t.false(packaged('node_modules/onnxruntime-node/dist/index.d.ts'));
  t.true(packaged('node_modules/onnxruntime-node/dist/index.js'));
});

test('the release script is separate and not part of npm test', (t) => {
  const root = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const client = JSON.parse(readFileSync(join(clientDir, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  t.is(client.scripts.release, 'node scripts/release.mjs');
  t.true(existsSync(join(clientDir, 'scripts', 'release.mjs')));

  // What `npm test` runs, following `npm run <script>` into the scripts it names.
  const seen = new Set<string>();
  const expand = (name: string): string[] => {
    if (seen.has(name)) return [];
    seen.add(name);
    const command = root.scripts[name];
    t.truthy(command, `the root package has script ${name}`);
    const named = [...command.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]);
    return [command, ...named.flatMap(expand)];
  };
  const commands = expand('test');
  t.true(seen.has('lint') && seen.has('typecheck'), `npm test runs: ${commands.join(' | ')}`);
  for (const command of commands) {
    t.notRegex(command, /release|electron-builder|-w client-app|--workspace/, command);
  }
  t.false('test' in client.scripts, 'client-app has no test script of its own a workspace run could pick up');

  // No test loads the release script or electron-builder's packager (only its pattern matcher, above).
  for (const file of filesUnder(join(clientDir, 'test'), clientDir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(clientDir, file), 'utf8');
    t.notRegex(
      source,
      /(from|import\()\s*['"][^'"]*\/release\.mjs['"]/,
      `${file} does not import the release script`,
    );
    t.notRegex(source, /from ['"]electron-builder['"]/, `${file} does not import electron-builder`);
  }
});
