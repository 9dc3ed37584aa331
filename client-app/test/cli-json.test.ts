// `--json` on the commands that lacked it: train, generate, export, client join (init and invite:
// coordinator/test/cli-fingerprint.test.ts). One JSON object on stdout, the same facts as the text.

import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInvite } from '@fedit/coordinator';
import { fingerprint, parseInvite } from '@fedit/shared';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { tinyLoopbackFederation } from './fixtures/loopback.ts';

let dir: string;
let model: string;
let data: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedit-cli-json-'));
  model = await writeTinyChatModel(join(dir, 'model'));
  data = join(dir, 'data.jsonl');
  await writeFile(
    data,
    '{"instruction": "hi", "output": "hello"}\n{"instruction": "bye", "output": "see you"}\n',
  );
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('train --json, then generate --json and export --json with the adapter it wrote', async (t) => {
  const adapter = join(dir, 'adapter');
  const trained = await fedit(
    ...['train', '--model', model, '--data', data, '--adapter-out', adapter],
    ...['--max-steps', '2', '--batch-size', '1', '--eval-fraction', '0', '--threads', '1', '--json'],
  );
  t.is(trained.code, 0, trained.stderr);
  const r = JSON.parse(trained.stdout) as Record<string, unknown>;
  t.like(r, {
    completed: true,
    steps: 2,
    adapterDir: adapter,
    trainerState: join(adapter, 'trainer_state.json'),
  });
  t.is(typeof r.lastLoss, 'number');
  t.true(existsSync(r.trainerState as string));

  const args = [
    'generate',
    '--model',
    model,
    '--adapter',
    adapter,
    '--prompt',
    'hi',
    '--max-new-tokens',
    '5',
  ];
  const text = await fedit(...args);
  const json = await fedit(...args, '--json');
  t.is(json.code, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), { prompt: 'hi', style: 'alpaca', text: text.stdout.slice(0, -1) });

  const out = join(dir, 'merged');
  const exported = await fedit(
    'export',
    '--model',
    model,
    '--adapter',
    adapter,
    '--out',
    out,
    '--merge',
    '--json',
  );
  t.is(exported.code, 0, exported.stderr);
  const e = JSON.parse(exported.stdout) as { outDir: string; files: string[]; dtype: string };
  t.is(e.dtype, 'F32');
  for (const file of e.files) t.true(existsSync(join(e.outDir, file)), file);
  t.truthy(JSON.parse(await readFile(join(e.outDir, 'config.json'), 'utf8')));
});

test('client join --json prints the membership and the fingerprint; it needs --yes', async (t) => {
  const fed = await tinyLoopbackFederation(t, {});
  const invite = createInvite(fed.fedDir, { url: fed.coordinator.url });
  const home = join(fed.dir, 'home');
  const unasked = await fedit('client', 'join', invite, '--json', '--home', home);
  t.is(unasked.code, 2, unasked.stderr);
  t.regex(unasked.stderr, /--json joins without asking: give --yes too/);

  const joined = await fedit('client', 'join', invite, '--yes', '--json', '--name', 'Dana', '--home', home);
  t.is(joined.code, 0, joined.stderr);
  t.like(JSON.parse(joined.stdout), {
    federation: fed.coordinator.config.id,
    url: fed.coordinator.url,
    coordinatorFingerprint: fingerprint(parseInvite(invite).coordinator),
    displayName: 'Dana',
    enrolled: true,
    baseModel: { name: 'tiny-test' },
  });
});
