// `fedit coordinator init --secure-aggregation` through the real command: the section lands in
// federation.json with defaults that pass the fixed-point overflow condition for the federation's
// weight cap (and the weight cap, no SCAFFOLD and no norm clipping spelled out, which a secure
// federation needs), the --secagg-* options set its fields, and a setting secure aggregation cannot
// work with is refused with secureAggregationProblem's sentence before anything is created.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import { checkFixedPointConfig, secureFixedPoint, type FederationConfig } from '@fedit/shared';
import { fedit } from './helpers/cli.ts';
import { tempDir, tinyModel } from './helpers/federation.ts';

const read = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;

test('--secure-aggregation alone writes a section whose defaults pass the overflow condition', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), '--secure-aggregation');
  t.is(r.code, 0, r.stderr);
  const config = read(dir);
  const secure = config.secureAggregation!;
  t.like(secure, {
    graph: 'secagg+',
    thresholdFraction: 0.7,
    clipRange: 1,
    maxParticipants: 1000,
    phaseSeconds: 60,
  });
  // The weight cap is one round's examples (10 steps x batch 4); k is the finest that fits.
  t.is(config.aggregation.weightCap, 40);
  t.notThrows(() => checkFixedPointConfig(secureFixedPoint(secure, 40)));
  t.throws(() => checkFixedPointConfig(secureFixedPoint({ ...secure, scaleBits: secure.scaleBits + 1 }, 40)));
  t.is(config.aggregation.clipping, undefined, 'no adaptive clipping: it needs the individual updates');
  t.false(config.training.scaffold, 'no SCAFFOLD: its control variates need each update');
});

test('the --secagg-* options set the section, and the default scale follows the weight cap', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit(
    'coordinator',
    'init',
    dir,
    '--model',
    await tinyModel(),
    '--secure-aggregation',
    'complete',
    '--secagg-threshold',
    '0.8',
    '--secagg-clip-range',
    '0.5',
    '--secagg-phase-seconds',
    '30',
    '--secagg-max-participants',
    '50',
    '--weight-cap',
    '1000',
    '--aggregation-rule',
    'fedavg-uniform',
  );
  t.is(r.code, 0, r.stderr);
  const { secureAggregation: secure, aggregation } = read(dir);
  t.like(secure, {
    graph: 'complete',
    thresholdFraction: 0.8,
    clipRange: 0.5,
    phaseSeconds: 30,
    maxParticipants: 50,
  });
  t.is(aggregation.weightCap, 1000);
  // 50 · ceil(1000 · 0.5 · 2^k) < 2^31  ->  k = 16 (2^17 would overflow).
  t.is(secure!.scaleBits, 16);
});

test('init refuses what secure aggregation cannot work with, naming the option, before creating anything', async (t) => {
  const model = await tinyModel();
  const cases: [string[], RegExp][] = [
    [['--aggregation-rule', 'median'], /--secure-aggregation.*median.*only the sum/],
    [['--scaffold'], /--secure-aggregation.*SCAFFOLD/],
    [['--clip', 'adaptive:2'], /--secure-aggregation.*adaptive clipping/],
    [['--secagg-scale-bits', '30'], /--secure-aggregation.*fixed-point/],
  ];
  for (const [options, pattern] of cases) {
    const dir = join(tempDir(t), 'federation');
    const r = await fedit('coordinator', 'init', dir, '--model', model, '--secure-aggregation', ...options);
    assertCleanFailure(t, r, pattern, 2);
    t.false(existsSync(dir), `${options.join(' ')}: nothing created`);
  }
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', model, '--secagg-threshold', '0.8');
  assertCleanFailure(t, r, /--secagg-threshold refines --secure-aggregation/, 2);
});
