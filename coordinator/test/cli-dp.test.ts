// Differential privacy on the command line: `fedit coordinator init --dp-*` writes the
// differentialPrivacy section (with the rule it needs, and no SCAFFOLD), calibrates sigma for a
// target epsilon and prints it; combinations that break the guarantee fail naming the option; and
// `fedit privacy` prints the smallest sigma that keeps a target epsilon.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { epsilonFor, type FederationConfig } from '@fedit/shared';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import { fedit } from './helpers/cli.ts';
import { tempDir, tinyModel } from './helpers/federation.ts';

const DP_ARGS = [
  '--dp-clip',
  '0.1',
  '--dp-noise-multiplier',
  '1.2',
  '--dp-delta',
  '1e-5',
  '--dp-epsilon-budget',
  '8',
];

test('init --dp-* writes the DP section with fedavg-uniform and without SCAFFOLD, and prints it', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), ...DP_ARGS);
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  t.deepEqual(config.differentialPrivacy, {
    clipNorm: 0.1,
    noiseMultiplier: 1.2,
    delta: 1e-5,
    epsilonBudget: 8,
  });
  t.deepEqual(config.aggregation, { rule: 'fedavg-uniform' });
  t.falsy(config.training.scaffold);
  t.regex(
    r.stdout,
    /differential privacy: updates clipped to 0\.1, noise σ = 1\.2 x C, δ = 0\.00001, finishes at ε = 8/,
  );
});

test('init --dp-target-epsilon computes sigma for the rounds and the expected sampling rate, and prints it', async (t) => {
  const dir = join(tempDir(t), 'federation');
  const args = [
    '--dp-clip',
    '0.1',
    '--dp-delta',
    '1e-5',
    '--dp-target-epsilon',
    '4',
    '--rounds',
    '20',
    '--fraction',
    '0.25',
  ];
  const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), ...args);
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'federation.json'), 'utf8')) as FederationConfig;
  const sigma = config.differentialPrivacy!.noiseMultiplier;
  // fraction 0.25 x the default over-selection 1.3.
  t.regex(
    r.stdout,
    new RegExp(
      `noise multiplier σ = ${sigma}: 20 rounds sampling q = 0\\.325 spend ε = [\\d.]+ at δ = 0\\.00001 \\(target 4\\)`,
    ),
  );
  const spent = (noiseMultiplier: number) =>
    epsilonFor({ delta: 1e-5, rounds: 20, sampleRate: 0.325, noiseMultiplier });
  t.true(spent(sigma) <= 4, `σ ${sigma} keeps the target`);
  t.true(spent(sigma * 0.99) > 4, `σ ${sigma} is the smallest that does, to 1%`);
});

test('init refuses DP with an example-weighted rule or clipping, without delta, or with both sigma and a target, naming the option', async (t) => {
  const refused = async (args: string[], message: RegExp) => {
    const dir = join(tempDir(t), 'federation');
    const r = await fedit('coordinator', 'init', dir, '--model', await tinyModel(), ...args);
    assertCleanFailure(t, r, message, 2);
    t.false(existsSync(dir), 'no federation folder');
  };
  await refused(
    [...DP_ARGS, '--aggregation-rule', 'fedit'],
    /--aggregation-rule must be "fedavg-uniform" with differentialPrivacy, got "fedit".*each counted update weighs 1/,
  );
  await refused([...DP_ARGS, '--clip', 'fixed:1'], /--clip must be absent with differentialPrivacy/);
  await refused(
    ['--dp-clip', '0.1', '--dp-noise-multiplier', '1'],
    /--dp-delta .*must be a number in \(0, 1\)/,
  );
  await refused([...DP_ARGS, '--dp-target-epsilon', '2'], /give it or --dp-noise-multiplier, not both/);
  await refused(['--dp-target-epsilon', '2'], /need --dp-clip and --dp-delta/);
});

test('fedit privacy prints the smallest sigma for an epsilon, and the epsilon of a sigma', async (t) => {
  const r = await fedit(
    'privacy',
    '--epsilon',
    '8',
    '--rounds',
    '50',
    '--sample-rate',
    '0.1',
    '--delta',
    '1e-6',
    '--json',
  );
  t.is(r.code, 0, r.stderr);
  const { noiseMultiplier, epsilon } = JSON.parse(r.stdout) as { noiseMultiplier: number; epsilon: number };
  t.true(epsilon <= 8 && epsilon > 7.9, `ε ${epsilon}`);
  const back = await fedit(
    'privacy',
    '--noise-multiplier',
    String(noiseMultiplier),
    '--rounds',
    '50',
    '--sample-rate',
    '0.1',
    '--delta',
    '1e-6',
  );
  t.is(back.code, 0, back.stderr);
  t.regex(
    back.stdout,
    new RegExp(
      `noise multiplier σ = ${noiseMultiplier}: 50 rounds sampling q = 0\\.1 spend ε = ${epsilon.toPrecision(4)} at δ = 0\\.000001`,
    ),
  );
  assertCleanFailure(
    t,
    await fedit('privacy', '--rounds', '5', '--sample-rate', '2', '--delta', '1e-5', '--epsilon', '1'),
    /--sample-rate must be in \(0, 1\]/,
    2,
  );
});
