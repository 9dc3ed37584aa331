// Bad input to the operator's commands, through the real `fedit` command: each fails with one
// line naming the option or the file at fault, no stack trace, and nothing written.

import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import { federationPaths } from '@fedit/shared';
import { fedit } from './helpers/cli.ts';
import { initTestFederation, tempDir, tinyModel } from './helpers/federation.ts';

for (const [value, message] of [
  ['3e9', /--expires-in must be at most 87840 hours \(ten years\), got "3e9"/],
  ['1e308', /--expires-in must be at most 87840 hours/],
  ['0', /--expires-in must be a positive number, got "0"/],
  ['soon', /--expires-in must be a positive number, got "soon"/],
] as const) {
  test(`invite --expires-in ${value} is refused, naming the option`, async (t) => {
    const root = await initTestFederation(t);
    const r = await fedit(
      'coordinator',
      'invite',
      root,
      '--url',
      'http://127.0.0.1:1',
      '--expires-in',
      value,
    );
    assertCleanFailure(t, r, message, 2);
    t.false(existsSync(join(root, 'invites.jsonl')), 'no invite was recorded');
  });
}

test('invite --expires-in at the bound works', async (t) => {
  const root = await initTestFederation(t);
  const r = await fedit(
    'coordinator',
    'invite',
    root,
    '--url',
    'http://127.0.0.1:1',
    '--expires-in',
    '87840',
  );
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^fedit-invite/m);
});

for (const value of ['abc', '1', '-0.1', '']) {
  test(`init --dropout ${JSON.stringify(value)} is refused, naming the option, and creates nothing`, async (t) => {
    const dir = join(tempDir(t), 'federation');
    const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), '--dropout', value);
    assertCleanFailure(t, r, new RegExp(`--dropout must be a probability in \\[0, 1\\), got "${value}"`), 2);
    t.false(existsSync(dir), 'no federation folder');
  });
}

test('init --dropout 0 is accepted', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), '--dropout', '0');
  t.is(r.code, 0, r.stderr);
  t.is(
    (JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as { lora: { dropout: number } }).lora
      .dropout,
    0,
  );
});

test('damaged coordinator keys are named by their file', async (t) => {
  const root = await initTestFederation(t);
  const keys = federationPaths(root).keys;
  const identity = JSON.parse(readFileSync(keys, 'utf8')) as { sign: { secretKey: string } };
  identity.sign.secretKey = identity.sign.secretKey.slice(0, 10);
  writeFileSync(keys, JSON.stringify(identity));
  for (const command of ['invite', 'start']) {
    const r = await fedit(
      'coordinator',
      command,
      root,
      ...(command === 'invite' ? ['--url', 'http://127.0.0.1:1'] : ['--port', '1']),
    );
    assertCleanFailure(t, r, /keys[/\\]coordinator\.json: not the coordinator's keys \(.*secretKey/);
  }
});
