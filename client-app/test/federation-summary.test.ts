// What a person reads about a federation before joining: its rule and learning settings in plain
// words, the same in `fedit client join` (formatInspection) and in the app (summarize), from the
// settings as a participant parses them.
import test from 'ava';
import type { FederationConfig } from '@fedit/shared';
import { formatInspection } from '../src/cli/client.ts';
import { summarize } from '../src/app/federation-summary.ts';
import { describeLearning } from '../src/core/federation/learning-words.ts';
import { parseFederationSettings, type InviteInspection } from '../src/core/federation/index.ts';

const BASE: FederationConfig = {
  id: 'fed-summary',
  name: 'summary',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 30,
    batchSize: 4,
    lr: 2e-3,
    cutoffLen: 64,
    template: 'alpaca',
    trainOnInputs: false,
  },
  rounds: 8,
  participantsPerRound: { fraction: 1, minimum: 3 },
  roundDeadlineSeconds: 600,
  minUpdates: 3,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

/** The settings as a participant holds them (parsed from the JSON the coordinator sends). */
function settings(change: {
  training?: Partial<FederationConfig['training']>;
  aggregation?: Partial<FederationConfig['aggregation']>;
}) {
  const config = {
    ...BASE,
    training: { ...BASE.training, ...change.training },
    aggregation: { ...BASE.aggregation, ...change.aggregation },
  };
  return parseFederationSettings(JSON.stringify(config));
}

test('a plain FedIT federation is described by its rule alone', (t) => {
  t.deepEqual(describeLearning(settings({})), [
    "The coordinator averages everyone's updates, weighted by how many examples each trained on (FedIT).",
  ]);
});

test('every rule is named in words, with its own settings', (t) => {
  const first = (aggregation: Partial<FederationConfig['aggregation']>) =>
    describeLearning(settings({ aggregation }))[0];
  t.regex(first({ rule: 'fedavg-uniform' }), /averages everyone's updates equally/);
  t.regex(first({ rule: 'median' }), /middle value of all updates \(coordinate-wise median\)/);
  t.regex(
    first({ rule: 'trimmed-mean', trimFraction: 0.1 }),
    /drops the highest and lowest 10% .* \(trimmed mean\)/,
  );
  t.regex(
    first({ rule: 'krum', byzantine: 1, krumSelect: 1 }),
    /keeps only the update most like the others \(Krum\), tolerating 1 harmful update per round/,
  );
  t.regex(
    first({ rule: 'krum', byzantine: 2, krumSelect: 3 }),
    /averages the 3 updates most like .* \(multi-Krum\), tolerating 2 harmful updates/,
  );
  t.regex(first({ rule: 'product-svd' }), /product of its LoRA factors.*back to rank 8/);
  t.is(
    first({ rule: 'from-a-later-fedit' }),
    'The coordinator combines the updates with the "from-a-later-fedit" method.',
  );
});

test('each learning setting gets one sentence, only when set', (t) => {
  const lines = describeLearning(
    settings({
      training: {
        freezeLoraA: true,
        proximalMu: 0.01,
        scaffold: true,
        lrSchedule: { kind: 'cosine', finalFraction: 0.1 },
      },
      aggregation: {
        clipping: { kind: 'adaptive', multiplier: 2 },
        weightCap: 120,
        serverOptimizer: { kind: 'adam', lr: 0.02 },
      },
    }),
  );
  t.is(lines.length, 8);
  t.true(
    lines.includes(
      "Updates larger than twice the round's median update are scaled down to that size, so no single update can pull the shared adapter far.",
    ),
  );
  t.true(lines.some((l) => /counts as at most 120\b/.test(l)));
  t.true(
    lines.some((l) => /the Adam optimiser \(FedAdam\), step size 0.02, remembering earlier rounds/.test(l)),
  );
  t.true(lines.some((l) => /LoRA's A matrices\) stays at its starting values.*\(FFA-LoRA\)/.test(l)));
  t.true(lines.some((l) => /\(FedProx, strength 0.01\)/.test(l)));
  t.true(lines.some((l) => /this computer's own \(SCAFFOLD\); this computer keeps its own part/.test(l)));
  t.true(
    lines.some((l) =>
      /falls along a cosine curve from 0.002 in the first round to 0.0002 in the last/.test(l),
    ),
  );

  const others = describeLearning(
    settings({
      training: { proximalMu: 0, lrSchedule: { kind: 'constant', finalFraction: 1 } },
      aggregation: { clipping: { kind: 'fixed', bound: 0.5 }, serverOptimizer: { kind: 'sgd', lr: 1 } },
    }),
  );
  t.deepEqual(others.slice(1), [
    'Updates that change the shared adapter by more than 0.5 (L2 norm) are scaled down to that size.',
    "The coordinator moves the shared adapter toward the round's result with a server learning rate (FedAvg), step size 1.",
  ]);
});

test('fedit client join shows how the federation learns before asking', (t) => {
  const inspection = {
    federation: BASE.id,
    url: 'http://127.0.0.1:7150',
    coordinatorFingerprint: 'ab'.repeat(16),
    settings: settings({ aggregation: { rule: 'median', clipping: { kind: 'adaptive', multiplier: 3 } } }),
  } as InviteInspection;
  const text = formatInspection(inspection);
  t.regex(text, /^aggregation {7}median$/m);
  t.regex(
    text,
    /How the federation learns:\n {2}- For every number in the adapter.*median.*\n {2}- Updates larger than 3 times the round's median update/,
  );
});

test('a median or trimmed mean over rounds that may count fewer than 5 updates says what it does not stop', (t) => {
  const caveat = (minUpdates: number, rule: string) =>
    describeLearning(
      parseFederationSettings(
        JSON.stringify({
          ...settings({ aggregation: { rule } }),
          participantsPerRound: { fraction: 1, minimum: 5 },
          minUpdates,
        }),
      ),
    ).find((line) => line.includes('harmful participant'));
  t.regex(
    caveat(2, 'median') ?? '',
    /as few as 2 updates: with fewer than 5, the median does not hold .* 87% to 47%.*Krum does/,
  );
  t.regex(caveat(3, 'trimmed-mean') ?? '', /the trimmed mean does not hold/);
  t.is(caveat(5, 'median'), undefined, 'rounds of at least 5 updates');
  t.is(caveat(2, 'krum'), undefined, 'Krum held at one in 3');
  t.is(caveat(2, 'fedit'), undefined, 'the mean is not sold as robust');
});

test("the app's summary carries the same sentences, apart from privacy", (t) => {
  const s = settings({ training: { freezeLoraA: true }, aggregation: { weightCap: 120 } });
  const summary = summarize(s, 'http://127.0.0.1:7150', 'ab'.repeat(16));
  t.deepEqual(summary.learning, describeLearning(s));
  t.true(summary.learning.some((l) => /FFA-LoRA/.test(l)));
  t.false(
    summary.privacy.some((l) => /averages/.test(l)),
    'the rule is told once, under learning',
  );
});
