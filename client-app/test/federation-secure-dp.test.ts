// Secure aggregation with client-level DP (distributed noise), through the real coordinator and
// real participants (in this process, tiny random model): each participant clips its delta to C
// and adds its own share of the Gaussian noise before masking, sized for the fewest updates the
// round can close with (max(minUpdates, t) = 2 here), so that the unmasked sum carries at least
// N(0, sigma^2 C^2) per coordinate. The coordinator adds no noise and never sees a delta; every
// round-closed record carries the accountant's privacy with noise "distributed"; `fedit audit`
// recomputes the secure rounds and the privacy account.

import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BlobStore,
  SecureRoundClient,
  federationPaths,
  parseRoundRecord,
  tensorToF32,
  type RoundRecord,
} from '@fedit/shared';
import { createInvite, startCoordinator, type FederationSettings } from '@fedit/coordinator';
import { FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { Participant, joinFederation } from '../src/core/federation/index.ts';

const PARTICIPANTS = ['ada', 'bo', 'cy'];
const CLIP = 0.5;
const SIGMA = 1;

const SETTINGS = {
  name: 'secure dp test',
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 2,
    batchSize: 2,
    lr: 1e-2,
    cutoffLen: 48,
    template: 'chat',
    trainOnInputs: false,
    scaffold: false,
  },
  rounds: 1,
  participantsPerRound: { fraction: 1, minimum: 3 },
  minUpdates: 2,
  roundDeadlineSeconds: 120,
  aggregation: { rule: 'fedavg-uniform', weightCap: 4 },
  differentialPrivacy: { clipNorm: CLIP, noiseMultiplier: SIGMA, delta: 1e-5 },
  // The clip range leaves 7 standard deviations for the noise shares (secureClipRangeFloor: 2.97).
  secureAggregation: {
    graph: 'complete',
    thresholdFraction: 0.6,
    clipRange: 3,
    scaleBits: 16,
    maxParticipants: 8,
    phaseSeconds: 10,
  },
} as unknown as FederationSettings;

/** Every delta masked in this process (a spy that calls the real SecureRoundClient.mask). */
const masked: Map<string, Float32Array>[] = [];
const realMask = SecureRoundClient.prototype.mask;
SecureRoundClient.prototype.mask = function (this: SecureRoundClient, delta, weight) {
  masked.push(new Map([...delta].map(([n, v]) => [n, Float32Array.from(v)])));
  return realMask.call(this, delta, weight);
};

test('with secure aggregation and DP each participant adds its noise share; the record accounts it as distributed and the audit passes', async (t) => {
  t.timeout(120_000);
  const work = await mkdtemp(join(tmpdir(), 'fedit-secure-dp-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(work, 'model'), 0);
  const fedDir = join(work, 'federation');
  await initFederationFromModel(fedDir, { modelDir, modelName: 'tiny-test', seed: 1, settings: SETTINGS });
  const coordinator = await startCoordinator({ dir: fedDir, host: '127.0.0.1', port: 0 });
  try {
    const results = await Promise.all(
      PARTICIPANTS.map(async (name, i) => {
        const home = join(work, 'homes', name);
        const data = join(work, `${name}.jsonl`);
        const rows = FACTS.slice(i * 3, i * 3 + 3).map(([q, a]) =>
          JSON.stringify({
            messages: [
              { role: 'user', content: `The ${q}?` },
              { role: 'assistant', content: a },
            ],
          }),
        );
        await writeFile(data, rows.join('\n') + '\n');
        await joinFederation(createInvite(fedDir, { url: coordinator.url }), { home, displayName: name });
        return new Participant().start({ modelDir, dataFiles: [data], home, threads: 1 });
      }),
    );
    for (const r of results) t.is(r.reason, 'finished');
  } finally {
    await coordinator.close();
  }

  // Each masked delta is mostly noise: its spread is sigma * C / sqrt(2) per coordinate (the clipped
  // delta itself has norm at most C over all coordinates).
  t.is(masked.length, 3);
  const share = (SIGMA * CLIP) / Math.SQRT2;
  for (const delta of masked) {
    const all = [...delta.values()].flatMap((v) => [...v]);
    const mean = all.reduce((s, x) => s + x, 0) / all.length;
    const std = Math.sqrt(all.reduce((s, x) => s + (x - mean) ** 2, 0) / (all.length - 1));
    t.true(all.length > 500, `${all.length} coordinates`);
    t.true(Math.abs(std / share - 1) < 0.1, `noise share spread ${std}, expected ${share}`);
  }

  const text = await readFile(federationPaths(fedDir).log, 'utf8');
  const log: RoundRecord[] = text
    .trim()
    .split('\n')
    .map((l, i) => parseRoundRecord(JSON.parse(l), `line ${i + 1}`));
  const closed = log.find((r) => r.kind === 'round-closed');
  if (closed?.kind !== 'round-closed') return t.fail('no round closed');
  t.is(closed.body.privacy?.noise, 'distributed');
  t.is(closed.body.privacy?.noiseMultiplier, String(SIGMA));
  t.true(Number(closed.body.privacy?.epsilon) > 0);
  t.deepEqual(closed.body.updates, []);
  t.is(closed.body.secure?.totalWeight, closed.body.secure?.maskedInputs.length, 'each update weighs 1');
  const open = log.find((r) => r.kind === 'round-open');
  t.false(open?.kind === 'round-open' && 'noiseCommitment' in open.body, 'no coordinator noise to commit to');

  // The new adapter moved by the mean of the noised deltas (the coordinator added nothing).
  const blobs = new BlobStore(federationPaths(fedDir).blobs);
  const before = blobs.get(closed.body.globalAdapterIn)!;
  const after = blobs.get(closed.body.globalAdapterOut)!;
  const n = closed.body.secure!.maskedInputs.length;
  let worst = 0;
  for (const [name, tensor] of after) {
    const g = tensorToF32(before.get(name)!);
    const v = tensorToF32(tensor);
    for (let i = 0; i < v.length; i++) {
      const expected = masked.slice(0, n).reduce((s, d) => s + d.get(name)![i], 0) / n;
      if (n === masked.length) worst = Math.max(worst, Math.abs(v[i] - g[i] - expected));
    }
  }
  t.true(worst < 1e-3, `largest difference from the mean of the noised deltas: ${worst}`);

  const audit = await fedit('audit', fedDir);
  t.is(audit.code, 0, audit.stdout + audit.stderr);
});
