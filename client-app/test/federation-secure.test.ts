// Secure rounds through the real coordinator and real participants (in this process, over
// loopback, tiny random model): three participants run a secure federation to its end. Each
// participant's plaintext delta and weight are observed where it masks them (a spy that calls the
// real SecureRoundClient.mask; training is not bit-reproducible across runs, so a second, plaintext
// federation could not be compared update for update). The secure global adapter of every round
// equals the plaintext rule's aggregate of those same updates (aggregateRound, what a plaintext
// federation runs) within the fixed-point bound; `fedit audit` passes on the folder; the blob store
// holds masked inputs only (no blob is any participant's update, no masked input correlates with
// its update or delta); the log holds the three phase records of every round.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BlobStore,
  SECAGG_MASKED_TENSOR,
  SecureRoundClient,
  aggregateRound,
  federationPaths,
  hashTensors,
  maskedInputTensors,
  maskedWordsOf,
  parseRoundRecord,
  ruleRefFor,
  tensorToF32,
  tensorsFromValues,
  type RoundRecord,
  type Tensor,
} from '@fedit/shared';
import {
  createInvite,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
} from '@fedit/coordinator';
import { EventRecorder, FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { Participant, joinFederation } from '../src/core/federation/index.ts';

const PARTICIPANTS = ['ada', 'bo', 'cy'];
const SCALE_BITS = 16;

const SETTINGS: Partial<FederationSettings> = {
  name: 'secure test',
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
  rounds: 2,
  participantsPerRound: { fraction: 1, minimum: 3 },
  minUpdates: 2,
  roundDeadlineSeconds: 120,
  // No norm clipping in either (the plaintext default is adaptive, which a secure round refuses).
  aggregation: { rule: 'fedit', weightCap: 4, clipping: undefined },
};

const SECURE = {
  graph: 'complete' as const,
  thresholdFraction: 0.6,
  clipRange: 1,
  scaleBits: SCALE_BITS,
  maxParticipants: 8,
  phaseSeconds: 10,
};

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-secure-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A federation (secure or not) on `modelDir`, its coordinator, and the three participants run to the end. */
async function runFederation(
  work: string,
  modelDir: string,
  homes: string[],
  dataFiles: string[],
  secure: boolean,
) {
  const fedDir = join(work, secure ? 'secure' : 'plain');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelName: 'tiny-test',
    seed: 1,
    settings: { ...SETTINGS, ...(secure && { secureAggregation: SECURE }) } as FederationSettings,
  });
  const recorder = new EventRecorder<CoordinatorEvent>();
  const coordinator = await startCoordinator({
    dir: fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: recorder.record,
  });
  try {
    const warnings: string[] = [];
    const runs = homes.map(async (home, i) => {
      await joinFederation(createInvite(fedDir, { url: coordinator.url }), {
        home,
        displayName: PARTICIPANTS[i],
      });
      const participant = new Participant();
      participant.on('warning', (m) => warnings.push(`${PARTICIPANTS[i]}: ${m}`));
      return participant.start({
        modelDir,
        dataFiles: [dataFiles[i]],
        home,
        threads: 1,
        reconnectionDelayMax: 500,
      });
    });
    const results = await Promise.all(runs);
    return { fedDir, results, warnings, events: recorder.events, config: coordinator.config };
  } finally {
    await coordinator.close();
  }
}

async function records(fedDir: string): Promise<RoundRecord[]> {
  const text = await readFile(federationPaths(fedDir).log, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseRoundRecord(JSON.parse(l), `line ${i + 1}`));
}

function values(tensors: Map<string, Tensor>): Map<string, Float32Array> {
  return new Map([...tensors].map(([n, t]) => [n, tensorToF32(t)]));
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/**
 * Every delta and weight masked in this process, with the blob hash its masked input is stored
 * under (which the round-closed record names with its participant): a spy on the real client.
 */
const maskedHere: { hash: string; delta: Map<string, Float32Array>; weight: number }[] = [];
const realMask = SecureRoundClient.prototype.mask;
SecureRoundClient.prototype.mask = function (this: SecureRoundClient, delta, weight) {
  const words = realMask.call(this, delta, weight);
  const copy = new Map([...delta].map(([n, v]) => [n, Float32Array.from(v)]));
  maskedHere.push({ hash: hashTensors(maskedInputTensors(words)), delta: copy, weight });
  return words;
};

test('a secure federation runs to its end, equals the plaintext aggregate of the same updates within the fixed-point bound, audits, and stores masked inputs only', async (t) => {
  t.timeout(120_000);
  const work = await tempDir(t);
  const modelDir = await writeTinyChatModel(join(work, 'model'), 0);
  const dataFiles = await Promise.all(
    PARTICIPANTS.map(async (name, i) => {
      const path = join(work, `${name}.jsonl`);
      const rows = FACTS.slice(i * 3, i * 3 + 3 + i).map(([q, a]) =>
        JSON.stringify({
          messages: [
            { role: 'user', content: `The ${q}?` },
            { role: 'assistant', content: a },
          ],
        }),
      );
      await writeFile(path, rows.join('\n') + '\n');
      return path;
    }),
  );
  const homes = PARTICIPANTS.map((name) => join(work, 'homes', name));
  const started = Date.now();
  const secure = await runFederation(work, modelDir, homes, dataFiles, true);
  t.log(
    `secure federation: ${((Date.now() - started) / 1000).toFixed(1)} s for ${SETTINGS.rounds} rounds of 3 participants`,
  );
  for (const r of secure.results) t.is(r.reason, 'finished', secure.warnings.join('\n'));

  const log = await records(secure.fedDir);
  const kinds = log.filter((r) => r.round === 1 && r.kind !== 'config').map((r) => r.kind);
  t.deepEqual(
    kinds.filter((k) => k.startsWith('round-') || k.startsWith('secagg-')),
    ['round-open', 'secagg-keys', 'secagg-shares', 'secagg-unmask', 'secagg-consistency', 'round-closed'],
  );
  const closed = log.flatMap((r) => (r.kind === 'round-closed' ? [r] : []));
  t.is(closed.length, 2);
  t.is(maskedHere.length, 6, 'each participant masked once per round');

  const blobs = new BlobStore(federationPaths(secure.fedDir).blobs);
  const stored = new Set(blobs.list());
  for (const { round, body } of closed) {
    t.deepEqual(body.updates, [], 'a secure round names no plaintext update');
    const mine = body.secure!.maskedInputs.map((input) => ({
      participant: input.participant,
      ...maskedHere.find((m) => m.hash === input.hash)!,
    }));
    t.true(
      mine.every((m) => m.delta !== undefined),
      'every stored masked input is one a participant masked',
    );
    const global = values(blobs.get(body.globalAdapterIn)!);
    const schema = new Map([...blobs.get(body.globalAdapterIn)!].map(([n, x]) => [n, x.shape]));
    const updates = mine.map((m) => ({
      participant: m.participant,
      weight: m.weight,
      trained: new Map(
        [...m.delta].map(([n, d]) => [n, Float32Array.from(d, (x, i) => global.get(n)![i] + x)]),
      ),
    }));
    t.is(
      body.secure!.totalWeight,
      mine.reduce((s, m) => s + m.weight, 0),
      'the total weight is the sum of the weights',
    );
    // What a plaintext federation of the same rule computes from the same updates.
    const plain = aggregateRound({
      rule: 'fedit',
      config: ruleRefFor(secure.config).config,
      schema,
      global,
      contributions: updates.map((u) => ({
        participant: u.participant,
        exampleCount: u.weight,
        update: () => u.trained,
      })),
    }).adapter;
    const out = values(blobs.get(body.globalAdapterOut)!);
    // n·2^-k / T per coordinate, and float32 rounding of the (different) arithmetic of each path.
    const bound = (mine.length * 2 ** -SCALE_BITS) / body.secure!.totalWeight;
    let worst = 0;
    let moved = 0;
    for (const [name, v] of out) {
      const p = plain.get(name)!;
      for (let i = 0; i < v.length; i++) {
        worst = Math.max(worst, Math.abs(v[i] - p[i]) - 2 ** -22 * Math.abs(p[i]));
        moved = Math.max(moved, Math.abs(p[i] - global.get(name)![i]));
      }
    }
    t.true(
      moved > 100 * bound,
      `round ${round} moved the adapter (by ${moved}), so the comparison means something`,
    );
    t.true(
      worst <= bound,
      `round ${round}: secure and plaintext differ by ${worst} beyond rounding, more than ${bound}`,
    );

    // No blob is a participant's update; no masked input correlates with its update or delta.
    for (const u of updates) t.false(stored.has(hashTensors(tensorsFromValues(schema, u.trained))));
    for (const input of body.secure!.maskedInputs) {
      const length = blobs.get(input.hash)!.get(SECAGG_MASKED_TENSOR)!.shape[0];
      const words = maskedWordsOf(blobs.get(input.hash)!, length);
      const signed = Int32Array.from(words.subarray(0, length - 1), (w) => w | 0);
      // Under independence |r| exceeds 4/sqrt(n) with probability below 1e-4.
      const limit = 4 / Math.sqrt(length - 1);
      const m = mine.find((x) => x.participant === input.participant)!;
      const u = updates.find((x) => x.participant === input.participant)!;
      const flat = (v: Map<string, Float32Array>) => [...v.keys()].sort().flatMap((n) => [...v.get(n)!]);
      for (const [what, v] of [
        ['update', flat(u.trained)],
        ['delta', flat(m.delta)],
      ] as const) {
        const r = Math.abs(pearson(signed, v));
        t.true(
          r < limit,
          `the masked input of ${input.participant} correlates with its ${what}: |r| = ${r} >= ${limit}`,
        );
      }
    }
  }
  for (const hash of stored) {
    if (blobs.get(hash)!.has(SECAGG_MASKED_TENSOR)) continue;
    t.true(
      closed.some((r) => r.body.globalAdapterOut === hash || r.body.globalAdapterIn === hash),
      `blob ${hash} is neither a masked input nor a global adapter`,
    );
  }

  // The audit recomputes every secure round from the masked inputs and the reveals.
  const audit = await fedit('audit', secure.fedDir);
  t.is(audit.code, 0, audit.stdout + audit.stderr);
});
