// The `fedit` command as a person runs it: a real process started from the repository root the way
// `npm run fedit -- ...` starts it, judged by its exit code, stdout and stderr.

import test from 'ava';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertCleanFailure, fedit, repoRoot } from '../../test/fixtures/fedit-cli.ts';
import {
  hashTensors,
  serializeSafetensors,
  tensorFromF32,
  writeSafetensorsFile,
  type Tensor,
} from '@fedit/shared';
import { userErrorMessage } from '../src/cli/main.ts';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';

const { version } = JSON.parse(await readFile(join(repoRoot, 'client-app/package.json'), 'utf8')) as {
  version: string;
};

// An adapter-shaped file: PEFT names, mixed dtypes, a scalar, metadata.
const tensors = new Map<string, Tensor>([
  [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
    tensorFromF32([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6)),
  ],
  [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    tensorFromF32([4, 2], new Float32Array(8).fill(0.5), 'BF16'),
  ],
  ['step', tensorFromF32([], Float32Array.of(7), 'F16')],
]);
const metadata = { format: 'pt', fedit_round: '3' };

let dir: string;
let adapter: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedit-cli-'));
  adapter = join(dir, 'adapter_model.safetensors');
  await writeSafetensorsFile(adapter, tensors, metadata);
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('--help describes fedit, lists its commands and exits 0', async (t) => {
  const r = await fedit('--help');
  t.is(r.code, 0);
  t.is(r.stderr, '');
  t.regex(r.stdout, /^Usage: fedit /);
  t.regex(r.stdout, /Federated instruction tuning/);
  t.regex(r.stdout, /^\s+tensors \[options\] <file>\s+list the tensors/m);
  t.regex(r.stdout, /^\s+help \[command\]/m);
});

test('--version prints the version of the client package', async (t) => {
  const r = await fedit('--version');
  t.is(r.code, 0);
  t.is(r.stdout.trim(), version);
});

test('help <command> explains that command and exits 0', async (t) => {
  const r = await fedit('help', 'tensors');
  t.is(r.code, 0);
  t.regex(r.stdout, /^Usage: fedit tensors \[options\] <file>/);
  t.regex(r.stdout, /--hash/);
  t.regex(r.stdout, /--json/);
});

test('an unknown command fails and names the command', async (t) => {
  const r = await fedit('frobnicate');
  assertCleanFailure(t, r, /unknown command 'frobnicate'/, 2);
  t.regex(r.stderr, /fedit --help/);
});

test('help for an unknown command fails and names the command', async (t) => {
  const r = await fedit('help', 'frobnicate');
  assertCleanFailure(t, r, /unknown command 'frobnicate'/, 2);
});

test('tensors without a file says which argument is missing', async (t) => {
  assertCleanFailure(t, await fedit('tensors'), /missing required argument 'file'/, 2);
});

test('tensors lists names, dtypes and shapes of a safetensors file', async (t) => {
  const r = await fedit('tensors', adapter);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  t.regex(lines[0], /^name\s+dtype\s+shape$/);
  t.regex(
    lines[1],
    /^base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight\s+F32\s+\[2, 3\]$/,
  );
  t.regex(
    lines[2],
    /^base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight\s+BF16\s+\[4, 2\]$/,
  );
  t.regex(lines[3], /^step\s+F16\s+\[\]$/);
  t.is(lines[4], '3 tensors, 15 values');
  t.is(lines.length, 5, 'no hash unless asked');
});

test('tensors --hash prints the canonical content hash of the tensors', async (t) => {
  const r = await fedit('tensors', '--hash', adapter);
  t.is(r.code, 0, r.stderr);
  const match = /^content hash (sha256:[0-9a-f]{64})$/m.exec(r.stdout);
  t.truthy(match, r.stdout);
  t.is(match?.[1], hashTensors(tensors));
});

test('tensors --json prints one JSON object with metadata, tensors and hash', async (t) => {
  const plain = JSON.parse((await fedit('tensors', '--json', adapter)).stdout) as Record<string, unknown>;
  t.deepEqual(plain, {
    file: adapter,
    metadata,
    tensors: [...tensors].map(([name, tensor]) => ({ name, dtype: tensor.dtype, shape: tensor.shape })),
  });
  const r = await fedit('tensors', '--json', '--hash', adapter);
  t.is(r.code, 0, r.stderr);
  t.is((JSON.parse(r.stdout) as { hash: string }).hash, hashTensors(tensors));
});

test('tensors on a file that is not safetensors fails with one clear line', async (t) => {
  const file = join(dir, 'notes.safetensors');
  await writeFile(file, 'these are my notes, not tensors\n');
  assertCleanFailure(
    t,
    await fedit('tensors', file),
    new RegExp(`^fedit: ${escapeRegExp(file)}: .*\\[SAFETENSORS_HEADER_TOO_LARGE\\]$`),
    65,
  );
});

test('tensors on a truncated file fails with one clear line', async (t) => {
  const whole = serializeSafetensors(tensors, metadata);
  const cutInData = join(dir, 'cut-in-data.safetensors');
  await writeFile(cutInData, whole.subarray(0, whole.byteLength - 5));
  assertCleanFailure(
    t,
    await fedit('tensors', cutInData),
    new RegExp(`^fedit: ${escapeRegExp(cutInData)}: .*\\[SAFETENSORS_\\w+\\]$`),
    65,
  );

  const cutInHeader = join(dir, 'cut-in-header.safetensors');
  await writeFile(cutInHeader, whole.subarray(0, 20));
  assertCleanFailure(
    t,
    await fedit('tensors', '--hash', cutInHeader),
    new RegExp(`^fedit: ${escapeRegExp(cutInHeader)}: .*\\[SAFETENSORS_TRUNCATED\\]$`),
    65,
  );
});

test('tensors on a missing file fails with one clear line naming the file', async (t) => {
  const missing = join(dir, 'no-such-adapter.safetensors');
  assertCleanFailure(
    t,
    await fedit('tensors', missing),
    new RegExp(`^fedit: ${escapeRegExp(missing)}: no such file or directory \\[ENOENT\\]$`),
    65,
  );
});

test('tensors on a directory fails with one clear line naming it', async (t) => {
  const folder = join(dir, 'a-folder.safetensors');
  await mkdir(folder);
  assertCleanFailure(
    t,
    await fedit('tensors', folder),
    new RegExp(`^fedit: ${escapeRegExp(folder)}: not a file`),
    65,
  );
});

test('train and eval given a folder as --data name it and ask for a data file', async (t) => {
  const model = join(dir, 'tiny-model');
  await writeTinyChatModel(model);
  const folder = join(dir, 'my-data');
  await mkdir(folder);
  await writeFile(join(folder, 'data.jsonl'), '{"instruction": "hi", "output": "hello"}\n');
  const expected = new RegExp(
    `^fedit: ${escapeRegExp(folder)}: is a folder; give a data file: a JSON array \\(\\.json\\) or JSON Lines \\(\\.jsonl\\)`,
  );
  assertCleanFailure(t, await fedit('eval', '--model', model, '--data', folder), expected, 65);
  const train = await fedit(
    ...['train', '--model', model, '--data', folder, '--adapter-out', join(dir, 'folder-adapter')],
  );
  assertCleanFailure(t, train, expected, 65);
});

test('operating-system errors without a path still read as one line', (t) => {
  const err = Object.assign(new Error('EPIPE: broken pipe, write'), {
    code: 'EPIPE',
    errno: -32,
    syscall: 'write',
  });
  t.is(userErrorMessage(err), 'write: broken pipe [EPIPE]');
  t.is(userErrorMessage(new TypeError('a bug')), undefined, 'bugs keep their stack trace');
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
