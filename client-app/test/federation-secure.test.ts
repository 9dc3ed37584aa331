// Secure rounds through the real coordinator and real participants (in this process, over
// loopback, tiny random model): three participants run a secure federation to its end, and the
// same three (the same identities, so the same training seeds) run a plaintext federation from the
// same initial adapter. The secure global adapter equals the plaintext one within the fixed-point
// bound; `fedit audit` passes on the secure folder; its blob store holds masked inputs only (no
// blob is any participant's update, and no masked input correlates with one); the round log holds
// the three phase records of every round and round-closed's `secure` section.

import test, { type ExecutionContext } from 'ava';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BlobStore,
  SECAGG_MASKED_TENSOR,
  federationPaths,
  maskedWordsOf,
  parseRoundRecord,
  tensorToF32,
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
  aggregation: { rule: 'fedit', weightCap: 4 },
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
  for (let i = 0; i < n; i++) ((ma += a[i]), (mb += b[i]));
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

test('a secure federation runs to its end, equals the plaintext one within the fixed-point bound, audits, and stores masked inputs only', async (t) => {
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
  // The same identities in both federations: the same participant ids, so the same training seeds.
  const homes = PARTICIPANTS.map((name) => join(work, 'homes', name));
  const plainHomes = PARTICIPANTS.map((name) => join(work, 'plain-homes', name));
  const started = Date.now();
  const secure = await runFederation(work, modelDir, homes, dataFiles, true);
  const secureSeconds = (Date.now() - started) / 1000;
  for (let i = 0; i < homes.length; i++) {
    await mkdir(plainHomes[i], { recursive: true, mode: 0o700 });
    await cp(join(homes[i], 'identity.json'), join(plainHomes[i], 'identity.json'));
  }
  const plain = await runFederation(work, modelDir, plainHomes, dataFiles, false);
  t.log(`secure federation: ${secureSeconds.toFixed(1)} s for ${SETTINGS.rounds} rounds of 3 participants`);

  for (const r of secure.results) t.is(r.reason, 'finished', secure.warnings.join('\n'));
  for (const r of plain.results) t.is(r.reason, 'finished', plain.warnings.join('\n'));

  const log = await records(secure.fedDir);
  const kinds = log.filter((r) => r.round === 1 && r.kind !== 'config').map((r) => r.kind);
  t.deepEqual(
    kinds.filter((k) => k.startsWith('round-') || k.startsWith('secagg-')),
    ['round-open', 'secagg-keys', 'secagg-shares', 'secagg-unmask', 'round-closed'],
  );
  const closed = log.filter((r) => r.kind === 'round-closed');
  t.is(closed.length, 2);
  const plainClosed = (await records(plain.fedDir)).filter((r) => r.kind === 'round-closed');

  // Round 1 starts both federations from the same adapter with the same updates: the secure mean
  // is the plaintext weighted mean to within the encoding's bound n·2^−k / T per coordinate.
  const blobs = new BlobStore(federationPaths(secure.fedDir).blobs);
  const plainBlobs = new BlobStore(federationPaths(plain.fedDir).blobs);
  const first = closed[0].kind === 'round-closed' ? closed[0].body : undefined;
  const plainFirst = plainClosed[0].kind === 'round-closed' ? plainClosed[0].body : undefined;
  t.is(first!.globalAdapterIn, plainFirst!.globalAdapterIn, 'both start from the same initial adapter');
  t.deepEqual(first!.updates, [], 'a secure round names no plaintext update');
  const totalWeight = first!.secure!.totalWeight;
  t.is(
    totalWeight,
    plainFirst!.updates.reduce((s, u) => s + Math.min(u.exampleCount, 4), 0),
  );
  const bound = (3 * 2 ** -SCALE_BITS) / totalWeight + 1e-6;
  const out = values(blobs.get(first!.globalAdapterOut)!);
  const plainOut = values(plainBlobs.get(plainFirst!.globalAdapterOut)!);
  let worst = 0;
  let moved = 0;
  const initial = values(blobs.get(first!.globalAdapterIn)!);
  for (const [name, v] of out) {
    const p = plainOut.get(name)!;
    for (let i = 0; i < v.length; i++) {
      worst = Math.max(worst, Math.abs(v[i] - p[i]));
      moved = Math.max(moved, Math.abs(p[i] - initial.get(name)![i]));
    }
  }
  t.true(moved > 100 * bound, `the round moved the adapter (by ${moved}), so the comparison means something`);
  t.true(worst <= bound, `secure and plaintext round 1 differ by ${worst}, more than ${bound}`);

  // The audit recomputes every secure round from the masked inputs and the reveals.
  const audit = await fedit('audit', secure.fedDir);
  t.is(audit.code, 0, audit.stdout + audit.stderr);

  // No blob is a participant's update, and no masked input correlates with one.
  const plainUpdates = plainClosed.flatMap((r) => (r.kind === 'round-closed' ? r.body.updates : []));
  const stored = new Set(blobs.list());
  for (const u of plainUpdates)
    t.false(stored.has(u.updateHash), 'a plaintext update is in the secure blob store');
  const masked = closed.flatMap((r) => (r.kind === 'round-closed' ? r.body.secure!.maskedInputs : []));
  t.is(masked.length, 6);
  const length =
    masked.length &&
    maskedWordsOf(blobs.get(masked[0].hash)!, blobs.get(masked[0].hash)!.get(SECAGG_MASKED_TENSOR)!.shape[0])
      .length;
  for (const m of masked) {
    const words = maskedWordsOf(blobs.get(m.hash)!, length);
    const signed = Int32Array.from(words.subarray(0, length - 1), (w) => w | 0);
    for (const u of plainUpdates.filter((p) => p.participant === m.participant)) {
      const update = [...values(plainBlobs.get(u.updateHash)!).values()].flatMap((v) => [...v]);
      const r = Math.abs(pearson(signed, update));
      t.true(r < 0.05, `masked input of ${m.participant} correlates with its update: |r| = ${r}`);
    }
  }
  for (const hash of stored) {
    const tensors = blobs.get(hash)!;
    if (tensors.has(SECAGG_MASKED_TENSOR)) continue;
    t.true(
      closed.some(
        (r) =>
          r.kind === 'round-closed' && (r.body.globalAdapterOut === hash || r.body.globalAdapterIn === hash),
      ),
      `blob ${hash} is neither a masked input nor a global adapter`,
    );
  }
});
