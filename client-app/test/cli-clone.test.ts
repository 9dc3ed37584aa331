// The `fedit` command from a fresh clone, as a new user runs it after `npm ci`: through the
// package bin (`npx fedit`, no build step), through `npm run fedit -- ...` from their own folder
// (relative paths are theirs), without npm warnings, and with errors in their terms.

import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensorFromF32, writeSafetensorsFile } from '@fedit/shared';
import { fedit, repoRoot, type Run } from '../../test/fixtures/fedit-cli.ts';
import { npmUserFolder } from '../src/cli/user-folder.ts';

let dir: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedit-cli-clone-'));
  const tensors = new Map([['w', tensorFromF32([2], Float32Array.of(1, 2))]]);
  await writeSafetensorsFile(join(dir, 'mine.safetensors'), tensors, {});
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((done) => {
    execFile(command, args, { cwd, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) =>
      done({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

test('the package bin runs from any folder without a build (the sources through tsx)', async (t) => {
  const { version } = JSON.parse(await readFile(join(repoRoot, 'client-app/package.json'), 'utf8')) as {
    version: string;
  };
  const r = await run(process.execPath, [join(repoRoot, 'client-app/bin/fedit.js'), '--version'], dir);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `${version}\n`);
  // A relative path is the caller's: the bin does not move.
  const listed = await run(
    process.execPath,
    [join(repoRoot, 'client-app/bin/fedit.js'), 'tensors', 'mine.safetensors', '--json'],
    dir,
  );
  t.is(listed.code, 0, listed.stderr);
  t.is((JSON.parse(listed.stdout) as { tensors: unknown[] }).tensors.length, 1);
});

test('the bin prefers the sources where they are (a clone) and runs dist/ where they are not (a package)', async (t) => {
  // A copy of the bin in a package-shaped folder inside the repository (so tsx resolves from the
  // repository's node_modules), with stand-ins for the two entry points that say which one ran.
  const root = join(repoRoot, 'test-output', `bin-${process.pid}`);
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'src/cli'), { recursive: true });
  await mkdir(join(root, 'dist/cli'), { recursive: true });
  await copyFile(join(repoRoot, 'client-app/bin/fedit.js'), join(root, 'bin/fedit.js'));
  await writeFile(join(root, 'package.json'), '{"type": "module"}\n');
  // A type annotation: only a TypeScript loader runs this file.
  await writeFile(join(root, 'src/cli/fedit.ts'), "const ran: string = 'sources';\nconsole.log(ran);\n");
  await writeFile(join(root, 'dist/cli/fedit.js'), "console.log('dist');\n");
  const clone = await run(process.execPath, [join(root, 'bin/fedit.js')], dir);
  t.is(clone.code, 0, clone.stderr);
  t.is(clone.stdout, 'sources\n', 'a stale dist/ is not what a clone runs');
  await rm(join(root, 'src'), { recursive: true });
  const installed = await run(process.execPath, [join(root, 'bin/fedit.js')], dir);
  t.is(installed.stdout, 'dist\n', installed.stderr);
});

test('npm run fedit resolves relative paths against the folder it was typed in, without npm warnings', async (t) => {
  const r = await run(
    'npm',
    ['--prefix', repoRoot, 'run', '--silent', 'fedit', '--', 'tensors', './mine.safetensors', '--json'],
    dir,
  );
  t.is(r.code, 0, r.stderr);
  t.is((JSON.parse(r.stdout) as { tensors: { name: string }[] }).tensors[0].name, 'w');
  t.notRegex(r.stderr, /npm warn/i, 'no warning about .npmrc');
});

test("npmUserFolder: INIT_CWD for the repository's fedit scripts, run where npm started them", (t) => {
  const npm = { INIT_CWD: '/home/me/data', npm_package_json: '/src/fedit/package.json' };
  t.is(npmUserFolder({ ...npm, npm_lifecycle_event: 'fedit' }, '/src/fedit'), '/home/me/data');
  t.is(npmUserFolder({ ...npm, npm_lifecycle_event: 'demo' }, '/src/fedit'), '/home/me/data');
  t.is(
    npmUserFolder({ ...npm, npm_lifecycle_event: 'fedit' }, '/tmp/elsewhere'),
    undefined,
    'a process a fedit script started in another folder keeps it',
  );
  t.is(npmUserFolder({ ...npm, npm_lifecycle_event: 'test' }, '/src/fedit'), undefined, 'npm test');
  t.is(npmUserFolder({}, '/src/fedit'), undefined, 'not started by npm');
});

test('a missing or incomplete model folder is described as a Hugging Face model folder', async (t) => {
  const data = join(dir, 'data.jsonl');
  await writeFile(data, '{"instruction": "hi", "output": "hello"}\n');
  const missing = join(dir, 'no-model');
  for (const args of [
    ['train', '--report-only', '--model', missing, '--data', data],
    ['eval', '--model', missing, '--data', data],
    ['generate', '--model', missing, '--prompt', 'hi'],
  ]) {
    const r = await fedit(...args);
    t.is(r.code, 65, `${args[0]}: ${r.stderr}`);
    t.regex(
      r.stderr,
      /: no such model folder \(a model folder is a Hugging Face model as downloaded from the Hub or written by save_pretrained: config\.json, model\.safetensors, tokenizer\.json\)/,
    );
    t.notRegex(r.stderr, /writeCharTokenizer/);
  }
  await writeFile(join(dir, 'config.json'), '{}'); // a folder with a config but no tokenizer
  const noTokenizer = await fedit('train', '--report-only', '--model', dir, '--data', data);
  t.is(noTokenizer.code, 65, noTokenizer.stderr);
  t.regex(noTokenizer.stderr, /has no tokenizer\.json: a model folder is a Hugging Face model/);
});
