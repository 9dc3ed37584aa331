// The audit of rounds with client-level differential privacy: a log whose rounds commit to their
// noise seed at open, aggregate by DP-FedAvg with that seed's noise and record the accountant's
// privacy verifies, the noise regenerated bit for bit; noise from another seed, a seed that is not
// the committed one, a missing commitment, an edited epsilon or history, and a round opened past
// the budget are each caught with their code; without the seeds the noise is reported unchecked.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  aggregateRound,
  configHash,
  hashTensors,
  newAccountant,
  noiseSeedCommitment,
  roundPrivacy,
  ruleRefFor,
  selectParticipants,
  signRoundRecord,
  tensorFromF32,
  tensorValues,
  tensorsFromValues,
  verifyRoundLog,
  ZERO_HASH,
  type AdapterSchema,
  type CountedUpdate,
  type FederationConfig,
  type RoundClosedBody,
  type RoundOpenBody,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type Tensor,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));

const CONFIG: FederationConfig = {
  id: 'fed-dp',
  name: 'dp in the audit',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] },
  training: { localSteps: 1, batchSize: 1, lr: 1e-3, cutoffLen: 32, template: 'chat', trainOnInputs: false },
  rounds: 3,
  participantsPerRound: { fraction: 0.5, minimum: 2 },
  roundDeadlineSeconds: 60,
  minUpdates: 2,
  aggregation: { rule: 'fedavg-uniform' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
  differentialPrivacy: { clipNorm: 0.05, noiseMultiplier: 1.1, delta: 1e-5 },
};

const A = 'layers.0.q_proj.lora_A.weight';
const B = 'layers.0.q_proj.lora_B.weight';
const SCHEMA: AdapterSchema = new Map([
  [A, [2, 4]],
  [B, [4, 2]],
]);
const PARTICIPANTS = ['p-alice', 'p-bob', 'p-carol', 'p-dave'];
const identities = new Map(PARTICIPANTS.map((p) => [p, participantIdentity(p)]));
const tensors = (values: ReadonlyMap<string, Float32Array>) => tensorsFromValues(SCHEMA, values);
const GLOBAL = tensors(
  new Map(
    [...SCHEMA].map(([name, [r, c]]) => [
      name,
      Float32Array.from({ length: r * c }, (_, i) => Math.sin(i) / 4),
    ]),
  ),
);

/** A trained adapter: the global one plus a step whose norm (about 0.1 to 0.4) exceeds C = 0.05. */
function trained(global: Map<string, Tensor>, round: number, k: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, g] of tensorValues(global))
    out.set(
      name,
      tensorFromF32(
        SCHEMA.get(name)! as number[],
        g.map((v, i) => v + Math.cos(round * 7 + k * 3 + i) / (10 + 20 * k)),
      ),
    );
  return out;
}

interface Dishonesty {
  config?: FederationConfig;
  /** The seed the coordinator aggregates with, given the one it committed to. */
  noiseSeed?: (round: number, committed: Uint8Array) => Uint8Array;
  /** Edits a round-open body before it is signed. */
  open?: (round: number, body: RoundOpenBody) => RoundOpenBody;
  /** Edits a round-closed body before it is signed. */
  closed?: (round: number, body: RoundClosedBody) => RoundClosedBody;
  /** Rounds to run before the log's finished record (default: all the config's; none: no record). */
  finishAfter?: number;
  /** The finished record's reason. */
  reason?: string;
}

/** A DP federation as the coordinator logs it (round-runner.ts, round-privacy.ts), and its seeds. */
function federation(dishonesty: Dishonesty = {}) {
  const config = dishonesty.config ?? CONFIG;
  const dp = config.differentialPrivacy!;
  const blobs = new Map<string, Map<string, Tensor>>();
  const seeds = new Map<number, Uint8Array>();
  const store = (t: Map<string, Tensor>) => {
    const hash = hashTensors(t);
    blobs.set(hash, t);
    return hash;
  };
  const records: RoundRecord[] = [];
  const append = <K extends RoundRecordKind>(kind: K, round: number, body: RoundRecordBodies[K]) => {
    records.push(
      signRoundRecord(
        {
          seq: records.length,
          federation: config.id,
          round,
          kind,
          prevHash: records.at(-1)?.hash ?? ZERO_HASH,
          time: new Date(Date.parse('2026-05-01T08:00:00.000Z') + records.length * 60_000).toISOString(),
          body,
        } as UnsignedRoundRecord,
        coordinator.secretKey,
      ),
    );
  };
  let globalAdapter = store(GLOBAL);
  append('config', 0, {
    settings: { config: JSON.stringify(config), configHash: configHash(config) },
    globalAdapter,
  });
  for (const participant of PARTICIPANTS)
    append('enrol', 0, { participant, publicKey: publicKeyHex(identities.get(participant)!) });
  const rule = ruleRefFor(config);
  let accountant = newAccountant(dp);
  const last = dishonesty.finishAfter ?? config.rounds;
  for (let round = 1; round <= last; round++) {
    const seed = `seed-${round}`;
    const selected = selectParticipants(seed, PARTICIPANTS, '0.5', 2);
    const selection = { seed, fraction: '0.5', minimum: 2, selected };
    const committed = new Uint8Array(randomBytes(32));
    seeds.set(round, committed);
    let open: RoundOpenBody = {
      rule,
      selection,
      globalAdapter,
      deadline: '2026-05-02T00:00:00.000Z',
      noiseCommitment: noiseSeedCommitment(committed),
    };
    if (dishonesty.open) open = dishonesty.open(round, open);
    append('round-open', round, open);
    const global = blobs.get(globalAdapter)!;
    const updates: CountedUpdate[] = selected.map((participant) => {
      const update = trained(global, round, PARTICIPANTS.indexOf(participant));
      return {
        participant,
        exampleCount: 10,
        updateHash: store(update),
        ...signedUpdate(identities.get(participant)!, {
          federation: config.id,
          round,
          globalAdapterHash: globalAdapter,
          exampleCount: 10,
          tensors: update,
        }),
      };
    });
    const result = aggregateRound({
      rule: rule.name,
      config: rule.config,
      schema: SCHEMA,
      global: tensorValues(global),
      noiseSeed: dishonesty.noiseSeed?.(round, committed) ?? committed,
      contributions: updates.map((u) => ({
        participant: u.participant,
        exampleCount: u.exampleCount,
        update: tensorValues(blobs.get(u.updateHash)!),
      })),
    });
    const sampled = { selected: selected.length, eligible: PARTICIPANTS.length };
    const account = roundPrivacy(accountant, { dp, noise: 'central' }, sampled);
    accountant = account.after;
    let body: RoundClosedBody = {
      rule,
      selection,
      updates,
      globalAdapterIn: globalAdapter,
      globalAdapterOut: store(tensors(result.adapter)),
      dropped: [],
      metrics: {},
      privacy: account.privacy,
    };
    if (dishonesty.closed) body = dishonesty.closed(round, body);
    append('round-closed', round, body);
    globalAdapter = body.globalAdapterOut;
  }
  if (dishonesty.finishAfter !== undefined)
    append('finished', last, {
      rounds: last,
      globalAdapter,
      ...(dishonesty.reason !== undefined && { reason: dishonesty.reason }),
    });
  return { records, blobs, seeds };
}

type Federation = ReturnType<typeof federation>;
const audit = ({ records, blobs, seeds }: Federation, withSeeds = true) =>
  verifyRoundLog(records, {
    coordinatorPublicKey: coordinator.publicKey,
    blobs: (hash) => blobs.get(hash),
    ...(withSeeds && { noiseSeeds: (round: number) => seeds.get(round) }),
  });
const codes = (report: ReturnType<typeof audit>) => report.problems.map((p) => `${p.round}:${p.code}`);

const HONEST = federation();

test('an honest DP log verifies: noise regenerated from each committed seed, adapters bit for bit, the accountant recomputed', (t) => {
  const report = audit(HONEST);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => [r.aggregation, r.noise]),
    [
      ['verified', 'verified'],
      ['verified', 'verified'],
      ['verified', 'verified'],
    ],
  );
  const closed = HONEST.records
    .filter((r) => r.kind === 'round-closed')
    .map((r) => r.body as RoundClosedBody);
  t.like(closed[0].privacy, {
    noise: 'central',
    sampled: { selected: 2, eligible: 4 },
    noiseMultiplier: '1.1',
    clipNorm: '0.05',
    delta: '0.00001',
  });
  t.deepEqual(closed[2].privacy!.history, [{ selected: 2, eligible: 4, noiseMultiplier: '1.1', rounds: 3 }]);
  const epsilons = closed.map((b) => Number(b.privacy!.epsilon));
  t.true(
    epsilons[0] > 0 && epsilons[0] < epsilons[1] && epsilons[1] < epsilons[2],
    `epsilon grows: ${epsilons}`,
  );
  t.is(Number(closed[1].privacy!.epsilonRound), epsilons[1] - epsilons[0]);
  t.deepEqual(closed[0].rule.config, {
    differentialPrivacy: { clipNorm: '0.05', noiseMultiplier: '1.1', noise: 'central' },
  });
});

test('without the seed files the noise, and so the aggregation, is reported unchecked, not verified', (t) => {
  const report = audit(HONEST, false);
  t.deepEqual(report.problems, [], 'the accounts and every other rule still check');
  t.deepEqual(
    report.rounds.map((r) => [r.aggregation, r.noise]),
    [
      ['unchecked', 'unchecked'],
      ['unchecked', 'unchecked'],
      ['unchecked', 'unchecked'],
    ],
  );
});

test('a coordinator that aggregates with noise from another seed than it committed to is caught', (t) => {
  const fed = federation({
    noiseSeed: (round, committed) => (round === 2 ? new Uint8Array(32).fill(1) : committed),
  });
  t.deepEqual(codes(audit(fed)), ['2:AGGREGATION_MISMATCH']);
});

test('a seed file that is not the committed seed is caught (NOISE_COMMITMENT)', (t) => {
  const seeds = new Map(HONEST.seeds);
  seeds.set(1, new Uint8Array(32).fill(3));
  const report = audit({ ...HONEST, seeds });
  t.deepEqual(codes(report), ['1:NOISE_COMMITMENT']);
  t.regex(report.problems[0].message, /not to the round-open record's [0-9a-f]{64}/);
});

test('a round-open record without a noise commitment is caught', (t) => {
  const fed = federation({
    open: (round, body) => {
      if (round !== 1) return body;
      const { noiseCommitment: _dropped, ...rest } = body;
      return rest;
    },
  });
  const report = audit(fed);
  t.true(codes(report).includes('1:NOISE_COMMITMENT'), codes(report).join(' '));
  t.regex(report.problems[0].message, /commits to no noise seed/);
});

test('an edited epsilon, history or sampling in a round record is caught (PRIVACY_MISMATCH)', (t) => {
  for (const edit of [
    (p: NonNullable<RoundClosedBody['privacy']>) => ({ ...p, epsilon: '0.01' }),
    (p: NonNullable<RoundClosedBody['privacy']>) => ({ ...p, history: [{ ...p.history[0], rounds: 1 }] }),
    (p: NonNullable<RoundClosedBody['privacy']>) => ({ ...p, sampled: { selected: 2, eligible: 40 } }),
    (p: NonNullable<RoundClosedBody['privacy']>) => ({ ...p, noiseMultiplier: '5' }),
  ]) {
    const fed = federation({
      closed: (round, body) => (round === 2 ? { ...body, privacy: edit(body.privacy!) } : body),
    });
    t.deepEqual(codes(audit(fed)), ['2:PRIVACY_MISMATCH']);
  }
  const left = federation({
    closed: (round, { privacy: _p, ...body }) => (round === 3 ? body : { ...body, privacy: _p }),
  });
  t.deepEqual(codes(audit(left)), ['3:PRIVACY_MISMATCH']);
});

test('a round opened when it no longer fits in the privacy budget is caught (PRIVACY_BUDGET)', (t) => {
  // The budget between the epsilon of two and of three rounds: the third round may not open.
  const closed = HONEST.records
    .filter((r) => r.kind === 'round-closed')
    .map((r) => r.body as RoundClosedBody);
  const [two, three] = [Number(closed[1].privacy!.epsilon), Number(closed[2].privacy!.epsilon)];
  const config = {
    ...CONFIG,
    differentialPrivacy: { ...CONFIG.differentialPrivacy!, epsilonBudget: (two + three) / 2 },
  };
  t.deepEqual(codes(audit(federation({ config }))), ['3:PRIVACY_BUDGET']);
});

test('finishing before the configured rounds is accepted only when one more round would exceed the budget', (t) => {
  const closed = HONEST.records
    .filter((r) => r.kind === 'round-closed')
    .map((r) => r.body as RoundClosedBody);
  const two = Number(closed[1].privacy!.epsilon);
  const reason = 'privacy budget spent';
  // 2 rounds spent; the budget lets no third round (at q = 1, the most a round can spend) in.
  const spent = {
    ...CONFIG,
    rounds: 5,
    differentialPrivacy: { ...CONFIG.differentialPrivacy!, epsilonBudget: two * 1.0001 },
  };
  t.deepEqual(codes(audit(federation({ config: spent, finishAfter: 2, reason }))), []);
  // A budget that still fits a third round: the early finish is a FINISHED_MISMATCH that says so.
  const roomy = { ...spent, differentialPrivacy: { ...spent.differentialPrivacy, epsilonBudget: 1000 } };
  const report = audit(federation({ config: roomy, finishAfter: 2, reason }));
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['FINISHED_MISMATCH'],
  );
  t.regex(report.problems[0].message, /one more round would still fit in its privacy budget/);
  const { epsilonBudget: _none, ...noBudget } = spent.differentialPrivacy;
  t.deepEqual(
    audit(federation({ config: { ...spent, differentialPrivacy: noBudget }, finishAfter: 2 })).problems.map(
      (p) => p.code,
    ),
    ['FINISHED_MISMATCH'],
  );
});
