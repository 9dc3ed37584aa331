// SCAFFOLD's server step (shared/src/aggregation/scaffold.ts): the control variate c+ is pinned
// bit for bit against an independent reimplementation of the header's arithmetic, agrees with the
// paper's formula c + (1/N) sum delta_c_i, rides in the server state beside a FedOpt state, and
// is recomputed by the audit, which catches a changed c blob, a c computed with another N, and a
// changed update.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  aggregateRound,
  configHash,
  controlName,
  hashTensors,
  ruleRefFor,
  scaffoldTermsOf,
  selectParticipants,
  serverStateTensors,
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
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type ScaffoldRoundTerms,
  type Tensor,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const A = 'layers.0.q_proj.lora_A.weight';
const B = 'layers.0.q_proj.lora_B.weight';
const SCHEMA: AdapterSchema = new Map([
  [A, [2, 3]],
  [B, [3, 2]],
]);
const NAMES = [A, B];
const values = (f: (i: number) => number) =>
  new Map(NAMES.map((n, t) => [n, Float32Array.from({ length: 6 }, (_, i) => f(i + 6 * t))]));

const GLOBAL = values((i) => Math.sin(i) / 3);
const UPDATES = [0, 1, 2].map((k) => values((i) => Math.fround(Math.sin(i) / 3 + Math.cos(i * 5 + k) / 40)));
const C_IN = values((i) => Math.cos(i * 3) / 7);
const TERMS: ScaffoldRoundTerms = { localSteps: 10, lr: 0.002, participants: 4 };

/** The header's arithmetic, written again over flat arrays: float32(c + (S / (K*lr) - m*c) / N). */
function referenceControl(
  global: Map<string, Float32Array>,
  updates: Map<string, Float32Array>[],
  c: Map<string, Float32Array> | undefined,
  terms: ScaffoldRoundTerms,
): Map<string, Float32Array> {
  const d = terms.localSteps * terms.lr;
  const out = new Map<string, Float32Array>();
  for (const name of NAMES) {
    const x = Array.from(global.get(name)!);
    const result = x.map((xi, i) => {
      let s = 0;
      for (const u of updates) s = s + (xi - u.get(name)![i]);
      const ci = c ? c.get(name)![i] : 0;
      return Math.fround(ci + (s / d - updates.length * ci) / terms.participants);
    });
    out.set(controlName(name), Float32Array.from(result));
  }
  return out;
}

const round = (config: object, serverState?: Map<string, Float32Array>, terms = TERMS) =>
  aggregateRound({
    rule: 'fedit',
    config: config as never,
    schema: SCHEMA,
    global: GLOBAL,
    serverState,
    scaffold: terms,
    contributions: UPDATES.map((update, k) => ({ participant: `p-${k}`, exampleCount: 5 + k, update })),
  });

test('c+ is the header arithmetic bit for bit, from zeros and from a stored c', (t) => {
  const fromZeros = round({ scaffold: true }).serverState!;
  t.deepEqual(fromZeros, referenceControl(GLOBAL, UPDATES, undefined, TERMS));
  const stateIn = new Map(NAMES.map((n) => [controlName(n), C_IN.get(n)!]));
  const next = round({ scaffold: true }, stateIn).serverState!;
  t.deepEqual(next, referenceControl(GLOBAL, UPDATES, C_IN, TERMS));
  t.notDeepEqual(next, fromZeros);
});

test("c+ agrees with the paper's c + (1/N) sum_i delta_c_i, delta_c_i = -c + (x - y_i)/(K lr)", (t) => {
  const stateIn = new Map(NAMES.map((n) => [controlName(n), C_IN.get(n)!]));
  const next = round({ scaffold: true }, stateIn).serverState!;
  const { localSteps: k, lr, participants: n } = TERMS;
  for (const name of NAMES) {
    const c = C_IN.get(name)!;
    const x = GLOBAL.get(name)!;
    for (let i = 0; i < c.length; i++) {
      const deltas = UPDATES.map((u) => -c[i] + (x[i] - u.get(name)![i]) / (k * lr));
      const paper = c[i] + deltas.reduce((a, b) => a + b, 0) / n;
      t.true(Math.abs(next.get(controlName(name))![i] - paper) <= 1e-6 * Math.max(1, Math.abs(paper)));
    }
  }
});

test('with FedAdam the state holds m, v and c; each part steps as it would alone', (t) => {
  const adam = { serverOptimizer: { kind: 'adam', lr: '0.5', beta1: '0.9', beta2: '0.99', tau: '0.001' } };
  const both = round({ scaffold: true, ...adam });
  const adamOnly = round(adam);
  t.deepEqual(both.adapter, adamOnly.adapter, 'c does not change the adapter step');
  const keys = [...both.serverState!.keys()];
  t.deepEqual(
    keys.filter((k) => !k.startsWith('c:')),
    [...adamOnly.serverState!.keys()],
  );
  t.deepEqual(
    keys.filter((k) => k.startsWith('c:')),
    NAMES.map(controlName),
  );
  // The next round splits the state again: a c of the wrong size is refused, naming it.
  const broken = new Map(both.serverState!);
  broken.set(controlName(B), new Float32Array(2));
  const error = t.throws(() => round({ scaffold: true, ...adam }, broken));
  t.regex(error!.message, /lacks SCAFFOLD's c:layers\.0\.q_proj\.lora_B\.weight of 6 values/);
});

test('SCAFFOLD refuses a round without its terms, or with fewer eligible participants than updates', (t) => {
  const noTerms = () =>
    aggregateRound({
      rule: 'fedit',
      config: { scaffold: true },
      schema: SCHEMA,
      global: GLOBAL,
      contributions: [{ participant: 'p', exampleCount: 1, update: UPDATES[0] }],
    });
  t.regex(t.throws(noTerms)!.message, /SCAFFOLD needs the round's local steps, learning rate/);
  t.regex(
    t.throws(() => round({ scaffold: true }, undefined, { ...TERMS, participants: 2 }))!.message,
    /2 participants were eligible, fewer than the 3 updates counted/,
  );
});

// ---- the audit ------------------------------------------------------------------------------------

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
const PARTICIPANTS = ['p-alice', 'p-bob', 'p-carol'];
const identities = new Map(PARTICIPANTS.map((p) => [p, participantIdentity(p)]));
const CONFIG: FederationConfig = {
  id: 'fed-scaffold',
  name: 'scaffold in the audit',
  baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] },
  training: {
    localSteps: 3,
    batchSize: 1,
    lr: 0.01,
    cutoffLen: 32,
    template: 'chat',
    trainOnInputs: false,
    scaffold: true,
    lrSchedule: { kind: 'linear', finalFraction: 0.5 },
  },
  rounds: 2,
  participantsPerRound: { fraction: 1, minimum: 3 },
  roundDeadlineSeconds: 60,
  minUpdates: 3,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

type Store = (tensors: Map<string, Tensor>) => string;

/** A two-round SCAFFOLD federation as round-runner.ts logs it; `terms` lets a dishonest coordinator pick N. */
function federation(terms = (r: number) => scaffoldTermsOf(CONFIG, r, PARTICIPANTS.length)) {
  const blobs = new Map<string, Map<string, Tensor>>();
  const store: Store = (tensors) => {
    const hash = hashTensors(tensors);
    blobs.set(hash, tensors);
    return hash;
  };
  const records: RoundRecord[] = [];
  const append = <K extends RoundRecordKind>(kind: K, r: number, body: RoundRecordBodies[K]) =>
    records.push(
      signRoundRecord(
        {
          seq: records.length,
          federation: CONFIG.id,
          round: r,
          kind,
          prevHash: records.at(-1)?.hash ?? ZERO_HASH,
          time: new Date(Date.parse('2026-05-01T08:00:00.000Z') + records.length * 60_000).toISOString(),
          body,
        } as UnsignedRoundRecord,
        coordinator.secretKey,
      ),
    );
  let globalAdapter = store(tensorsFromValues(SCHEMA, GLOBAL));
  append('config', 0, {
    settings: { config: JSON.stringify(CONFIG), configHash: configHash(CONFIG) },
    globalAdapter,
  });
  for (const participant of PARTICIPANTS)
    append('enrol', 0, { participant, publicKey: publicKeyHex(identities.get(participant)!) });
  const rule = ruleRefFor(CONFIG);
  let state: string | undefined;
  for (let r = 1; r <= CONFIG.rounds; r++) {
    const seed = `seed-${r}`;
    const selection = {
      seed,
      fraction: '1',
      minimum: 3,
      selected: selectParticipants(seed, PARTICIPANTS, '1', 3),
    };
    append('round-open', r, { rule, selection, globalAdapter, deadline: '2026-05-02T00:00:00.000Z' });
    const global = tensorValues(blobs.get(globalAdapter)!);
    const updates: CountedUpdate[] = PARTICIPANTS.map((participant, k) => {
      const update = tensorsFromValues(
        SCHEMA,
        new Map([...global].map(([n, g]) => [n, g.map((v, i) => v + Math.cos(r * 7 + k * 3 + i) / 50)])),
      );
      return {
        participant,
        exampleCount: 10 + k,
        updateHash: store(update),
        ...signedUpdate(identities.get(participant)!, {
          federation: CONFIG.id,
          round: r,
          globalAdapterHash: globalAdapter,
          exampleCount: 10 + k,
          tensors: update,
        }),
      };
    });
    const result = aggregateRound({
      rule: rule.name,
      config: rule.config,
      schema: SCHEMA,
      global,
      serverState: state === undefined ? undefined : tensorValues(blobs.get(state)!),
      scaffold: terms(r),
      contributions: updates.map((u) => ({
        participant: u.participant,
        exampleCount: u.exampleCount,
        update: tensorValues(blobs.get(u.updateHash)!),
      })),
    });
    const body: RoundClosedBody = {
      rule,
      selection,
      updates,
      globalAdapterIn: globalAdapter,
      globalAdapterOut: store(tensorsFromValues(SCHEMA, result.adapter)),
      ...(state !== undefined && { serverStateIn: state }),
      serverStateOut: store(serverStateTensors(SCHEMA, result.serverState!)),
      dropped: [],
      metrics: {},
    };
    append('round-closed', r, body);
    globalAdapter = body.globalAdapterOut;
    state = body.serverStateOut;
  }
  return { records, blobs };
}

const audit = ({ records, blobs }: ReturnType<typeof federation>) =>
  verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey, blobs: (hash) => blobs.get(hash) });
const codes = (report: ReturnType<typeof audit>) => report.problems.map((p) => `${p.round}:${p.code}`);
const closed = (records: readonly RoundRecord[]) =>
  records.filter((r) => r.kind === 'round-closed').map((r) => r.body as RoundClosedBody);

const HONEST = federation();

test('an honest SCAFFOLD log verifies: rule config names scaffold, c chained round to round in the state', (t) => {
  const report = audit(HONEST);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
  const [first, second] = closed(HONEST.records);
  t.deepEqual(first.rule.config, { scaffold: true });
  t.is(second.serverStateIn, first.serverStateOut);
  t.deepEqual([...HONEST.blobs.get(first.serverStateOut!)!.keys()], NAMES.map(controlName));
});

test('a changed c blob, a c computed with another N, and a changed update are each caught', (t) => {
  const firstState = closed(HONEST.records)[0].serverStateOut!;
  const blobs = new Map(HONEST.blobs);
  const altered = new Map(blobs.get(firstState)!);
  const c = tensorValues(altered).get(controlName(B))!.slice();
  c[0] += 1e-4;
  altered.set(controlName(B), tensorFromF32([3, 2], c));
  blobs.set(firstState, altered);
  t.deepEqual(codes(audit({ records: HONEST.records, blobs })), ['1:BLOB_CORRUPT', '2:BLOB_CORRUPT']);

  // The coordinator divides by the 3 selected plus one phantom participant: N is the log's, not its.
  const wrongN = audit(federation((r) => scaffoldTermsOf(CONFIG, r, PARTICIPANTS.length + 1)));
  t.deepEqual(codes(wrongN), ['1:AGGREGATION_MISMATCH', '2:AGGREGATION_MISMATCH']);
  t.regex(wrongN.problems[0].message, /server optimizer gives state sha256:[0-9a-f]{64}, not the recorded/);

  const update = closed(HONEST.records)[1].updates[0].updateHash;
  const changed = new Map(HONEST.blobs);
  const tensors = new Map(changed.get(update)!);
  const b = tensorValues(tensors).get(B)!.slice();
  b[1] += 1e-3;
  tensors.set(B, tensorFromF32([3, 2], b));
  changed.set(update, tensors);
  t.deepEqual(codes(audit({ records: HONEST.records, blobs: changed })), ['2:BLOB_CORRUPT']);
});

test('a SCAFFOLD round whose record names no state out is caught', (t) => {
  const records = HONEST.records.map((r) => {
    if (r.kind !== 'round-closed' || r.round !== 2) return r;
    const { serverStateOut: _dropped, ...body } = r.body;
    const { hash: _h, signature: _s, ...unsigned } = r;
    return signRoundRecord({ ...unsigned, body } as UnsignedRoundRecord, coordinator.secretKey);
  });
  const report = audit({ records, blobs: HONEST.blobs });
  t.true(codes(report).includes('2:RULE_CONFIG'), codes(report).join());
  t.regex(
    report.problems.find((p) => p.code === 'RULE_CONFIG')!.message,
    /keeps state, but the record names none/,
  );
});
