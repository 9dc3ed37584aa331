// `fedit coordinator init`'s options for the limits and the aggregation rule, through the real
// command: the values land in federation.json (and so in the round log's config record), and a bad
// value fails cleanly, naming the option, before anything is created.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import type { FederationConfig } from '@fedit/shared';
import { fedit } from './helpers/cli.ts';
import { tempDir, tinyModel } from './helpers/federation.ts';

test('init writes the limit and aggregation options into federation.json', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit(
    'coordinator',
    'init',
    dir,
    '--model',
    await tinyModel(),
    '--max-upload-size',
    '1.5MiB',
    '--max-update-norm',
    '12.5',
    '--max-example-count',
    '5000',
    '--aggregation-rule',
    'fedavg-uniform',
  );
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  t.deepEqual(config.limits, {
    maxUploadBytes: 1.5 * 1024 * 1024,
    maxUpdateNorm: 12.5,
    maxExampleCount: 5000,
  });
  // A rule chosen alone keeps the default clipping, and the weight cap is one round's examples.
  t.deepEqual(config.aggregation, {
    rule: 'fedavg-uniform',
    clipping: { kind: 'adaptive', multiplier: 2 },
    weightCap: 20 * 4,
  });
});

test('init without the options writes the defaults', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel());
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  t.deepEqual(config.limits, {
    maxUploadBytes: 512 * 1024 * 1024,
    maxUpdateNorm: 1000,
    maxExampleCount: 10_000_000,
  });
  t.deepEqual(config.aggregation, {
    rule: 'fedit',
    clipping: { kind: 'adaptive', multiplier: 2 },
    weightCap: 20 * 4,
  });
});

const bad: [string, string, RegExp][] = [
  ['--max-upload-size', 'lots', /--max-upload-size must be a whole number of bytes >= 1, got "lots"/],
  ['--max-upload-size', '0.5', /--max-upload-size must be a whole number of bytes/],
  ['--max-update-norm', '-1', /--max-update-norm must be a finite positive number, got "-1"/],
  ['--max-update-norm', 'Infinity', /--max-update-norm must be a finite positive number, got "Infinity"/],
  ['--max-update-norm', '1e999', /--max-update-norm must be a finite positive number, got "1e999"/],
  ['--max-example-count', '2.5', /--max-example-count must be a whole number >= 1, got "2.5"/],
  [
    '--aggregation-rule',
    'bulyan',
    /--aggregation-rule must be one of the known rules \(fedavg-uniform, fedit, .*\), got "bulyan"/,
  ],
];
for (const [flag, value, message] of bad) {
  test(`init refuses ${flag} ${value}, naming the option, and creates nothing`, async (t) => {
    const dir = join(tempDir(t), 'federation');
    const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), flag, value);
    assertCleanFailure(t, r, message);
    t.false(existsSync(dir), 'no federation folder');
  });
}

test("init's help says aborted rounds count toward --rounds", async (t) => {
  const r = await fedit('coordinator', 'init', '--help');
  t.is(r.code, 0);
  t.regex(
    r.stdout.replace(/\s+/g, ' '),
    /--rounds <n> rounds to open; aborted rounds \(too few updates\) count too/,
  );
});
