// The audit of rounds that use a server optimizer: a log whose rounds record the rule config the
// federation config derives, and the server state each round steps from and leaves, verifies; a
// tampered state blob, a state that is not the last round's, a state left out, or a rule config
// other than the federation's is each caught with its problem code.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  aggregateRound,
  configHash,
  hashTensors,
  ruleRefFor,
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
  type Tensor,
  type UnsignedRoundRecord,
  type VerificationProblemCode,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));

/** Median with adaptive clipping and FedAdam: a rule with its own state and every pipeline step. */
const CONFIG: FederationConfig = {
  id: 'fed-learning',
  name: 'server optimizer in the audit',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] },
  training: { localSteps: 1, batchSize: 1, lr: 1e-3, cutoffLen: 32, template: 'chat', trainOnInputs: false },
  rounds: 2,
  participantsPerRound: { fraction: 1, minimum: 3 },
  roundDeadlineSeconds: 60,
  minUpdates: 3,
  aggregation: {
    rule: 'median',
    weightCap: 20,
    clipping: { kind: 'adaptive', multiplier: 2 },
    serverOptimizer: { kind: 'adam', lr: 0.5 },
  },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

const A = 'layers.0.q_proj.lora_A.weight';
const B = 'layers.0.q_proj.lora_B.weight';
const SCHEMA: AdapterSchema = new Map([
  [A, [2, 4]],
  [B, [4, 2]],
]);
const PARTICIPANTS = ['p-alice', 'p-bob', 'p-carol'];

const tensors = (values: ReadonlyMap<string, Float32Array>) => tensorsFromValues(SCHEMA, values);
const GLOBAL = tensors(
  new Map(
    [...SCHEMA].map(([name, [r, c]]) => [
      name,
      Float32Array.from({ length: r * c }, (_, i) => Math.sin(i) / 4),
    ]),
  ),
);

/** A participant's trained adapter in `round`: the round's global adapter plus a small step. */
function trained(global: Map<string, Tensor>, round: number, k: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, g] of tensorValues(global))
    out.set(
      name,
      tensorFromF32(
        SCHEMA.get(name)! as number[],
        g.map((v, i) => v + Math.cos(round * 7 + k * 3 + i) / 50),
      ),
    );
  return out;
}

type Store = (tensors: Map<string, Tensor>) => string;

/** Identities are costly to derive (tweetnacl on a shared CPU): one per participant for the file. */
const identities = new Map(PARTICIPANTS.map((p) => [p, participantIdentity(p)]));

interface Dishonesty {
  /** The federation config the log records (CONFIG unless told otherwise). */
  config?: FederationConfig;
  /** The state the coordinator steps from in `round`, given the last one the log names. */
  stateIn?: (round: number, last: string | undefined, store: Store) => string | undefined;
  /** The rule the coordinator announces and applies, instead of the one the config derives. */
  rule?: RoundClosedBody['rule'];
  /** Edits a round-closed body before it is signed. */
  closed?: (round: number, body: RoundClosedBody, store: Store) => RoundClosedBody;
}

/**
 * A two-round federation as the coordinator logs it (round-runner.ts): the config record holds
 * the federation config; each round announces the rule the config derives, aggregates through the
 * round pipeline from the last server state the log names, and records both states as blobs.
 */
function federation(dishonesty: Dishonesty = {}) {
  const config = dishonesty.config ?? CONFIG;
  const blobs = new Map<string, Map<string, Tensor>>();
  const store: Store = (tensors) => {
    const hash = hashTensors(tensors);
    blobs.set(hash, tensors);
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
        } as UnsignedRoundRecord, // K is one kind, and body that kind's: TypeScript cannot correlate the two
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
  const rule = dishonesty.rule ?? ruleRefFor(config);
  let lastState: string | undefined;
  for (let round = 1; round <= config.rounds; round++) {
    const seed = `seed-${round}`;
    const selection = {
      seed,
      fraction: '1',
      minimum: 3,
      selected: selectParticipants(seed, PARTICIPANTS, '1', 3),
    };
    append('round-open', round, { rule, selection, globalAdapter, deadline: '2026-05-02T00:00:00.000Z' });
    const global = blobs.get(globalAdapter)!;
    const updates: CountedUpdate[] = PARTICIPANTS.map((participant, k) => {
      const update = trained(global, round, k);
      const exampleCount = 10 + 7 * k;
      return {
        participant,
        exampleCount,
        updateHash: store(update),
        ...signedUpdate(identities.get(participant)!, {
          federation: config.id,
          round,
          globalAdapterHash: globalAdapter,
          exampleCount,
          tensors: update,
        }),
      };
    });
    const stateIn = dishonesty.stateIn ? dishonesty.stateIn(round, lastState, store) : lastState;
    const result = aggregateRound({
      rule: rule.name,
      config: rule.config,
      schema: SCHEMA,
      global: tensorValues(global),
      serverState: stateIn === undefined ? undefined : tensorValues(blobs.get(stateIn)!),
      contributions: updates.map((u) => ({
        participant: u.participant,
        exampleCount: u.exampleCount,
        update: tensorValues(blobs.get(u.updateHash)!),
      })),
    });
    const serverStateOut = result.serverState && store(serverStateTensors(SCHEMA, result.serverState));
    let body: RoundClosedBody = {
      rule,
      selection,
      updates,
      globalAdapterIn: globalAdapter,
      globalAdapterOut: store(tensors(result.adapter)),
      // As the coordinator writes them: the state in only when the rule keeps state.
      ...(serverStateOut !== undefined && stateIn !== undefined && { serverStateIn: stateIn }),
      ...(serverStateOut !== undefined && { serverStateOut }),
      dropped: [],
      metrics: {},
    };
    if (dishonesty.closed) body = dishonesty.closed(round, body, store);
    append('round-closed', round, body);
    globalAdapter = body.globalAdapterOut;
    lastState = body.serverStateOut ?? lastState;
  }
  return { records, blobs };
}

/** A state of the schema's shape that no round computed (every value `fill`). */
const madeUpState = (fill: number) =>
  serverStateTensors(
    SCHEMA,
    new Map(
      [...SCHEMA].flatMap(([n, [r, c]]) =>
        [`m:${n}`, `v:${n}`].map((key) => [key, new Float32Array(r * c).fill(fill)]),
      ),
    ),
  );

const audit = ({ records, blobs }: ReturnType<typeof federation>) =>
  verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey, blobs: (hash) => blobs.get(hash) });

const codes = (report: ReturnType<typeof audit>) => report.problems.map((p) => `${p.round}:${p.code}`);
const at = (round: number, ...list: VerificationProblemCode[]) => list.map((code) => `${round}:${code}`);
const closedBodies = (records: readonly RoundRecord[]) =>
  records.filter((r) => r.kind === 'round-closed').map((r) => r.body as RoundClosedBody);

/** The honest log, built once; a test that alters its blob store works on a copy of the store. */
const HONEST = federation();
const FIRST_STATE = closedBodies(HONEST.records)[0].serverStateOut!;
const withBlobs = (edit: (blobs: Map<string, Map<string, Tensor>>) => void) => {
  const blobs = new Map(HONEST.blobs);
  edit(blobs);
  return { records: HONEST.records, blobs };
};

test('an honest log whose rounds step a server optimizer, its state chained round to round, verifies', (t) => {
  const report = audit(HONEST);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
  const [first, second] = closedBodies(HONEST.records);
  t.deepEqual(first.rule, ruleRefFor(CONFIG));
  t.like(first.rule.config, { serverOptimizer: { kind: 'adam', lr: '0.5', beta1: '0.9' } });
  t.is(first.serverStateIn, undefined, 'the first round steps from zeros');
  t.is(second.serverStateIn, first.serverStateOut);
  t.not(second.serverStateOut, first.serverStateOut);
  t.deepEqual([...HONEST.blobs.get(FIRST_STATE)!.keys()], [`m:${A}`, `v:${A}`, `m:${B}`, `v:${B}`]);
});

test('a server state blob changed in the store is caught where it is read: as one round state out, and the next one state in', (t) => {
  const report = audit(
    withBlobs((blobs) => {
      const altered = new Map(blobs.get(FIRST_STATE)!);
      const m = tensorValues(altered).get(`m:${B}`)!.slice();
      m[0] += 1e-3;
      altered.set(`m:${B}`, tensorFromF32([4, 2], m));
      blobs.set(FIRST_STATE, altered);
    }),
  );
  t.deepEqual(codes(report), [...at(1, 'BLOB_CORRUPT'), ...at(2, 'BLOB_CORRUPT')]);
  t.regex(
    report.problems[0].message,
    new RegExp(`the new server state stored under ${FIRST_STATE} hashes to sha256:`),
  );
  t.regex(
    report.problems[1].message,
    new RegExp(`the server state stored under ${FIRST_STATE} hashes to sha256:`),
  );
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['failed', 'failed'],
  );
});

test('a missing state blob fails both rounds that name it', (t) => {
  const report = audit(withBlobs((blobs) => blobs.delete(FIRST_STATE)));
  t.deepEqual(codes(report), [...at(1, 'BLOB_MISSING'), ...at(2, 'BLOB_MISSING')]);
  t.regex(
    report.problems[0].message,
    new RegExp(`the new server state ${FIRST_STATE} is not in the blob store`),
  );
  t.regex(report.problems[1].message, new RegExp(`the server state ${FIRST_STATE} is not in the blob store`));
  t.deepEqual(
    report.rounds.map((r) => r.missingBlobs),
    [[FIRST_STATE], [FIRST_STATE]],
  );
});

test('a recorded state out that is not what the optimizer gives is an aggregation mismatch', (t) => {
  // The coordinator records (and the next round steps from) a state of its own making.
  const report = audit(
    federation({
      closed: (round, body, store) =>
        round === 1 ? { ...body, serverStateOut: store(madeUpState(0.01)) } : body,
    }),
  );
  t.deepEqual(codes(report), at(1, 'AGGREGATION_MISMATCH'));
  t.regex(
    report.problems[0].message,
    /rule median's server optimizer gives state sha256:[0-9a-f]{64}, not the recorded sha256:/,
  );
  // The next round steps from the recorded state, as the log says, and is itself consistent.
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['failed', 'verified'],
  );
});

test('a round that steps from another state than the last round left is caught, its recomputation consistent', (t) => {
  // Round 2 steps from a state of the coordinator's choosing (momentum rewritten), and says so.
  const other = audit(
    federation({ stateIn: (round, last, store) => (round === 2 ? store(madeUpState(0.02)) : last) }),
  );
  t.deepEqual(codes(other), at(2, 'GLOBAL_MISMATCH'));
  t.regex(
    other.problems[0].message,
    /steps from server state sha256:[0-9a-f]{64}, but the last round left sha256:/,
  );
  t.is(other.rounds[1].aggregation, 'verified');
  // Round 2 steps from zeros (the state dropped) and names none.
  const reset = audit(federation({ stateIn: (round, last) => (round === 2 ? undefined : last) }));
  t.deepEqual(codes(reset), at(2, 'GLOBAL_MISMATCH'));
  t.regex(
    reset.problems[0].message,
    new RegExp(`steps from server state \\(none\\), but the last round left ${FIRST_STATE}`),
  );
});

test('a round whose optimizer keeps state but whose record names none is caught', (t) => {
  const report = audit(
    federation({
      closed: (round, body) => {
        if (round !== 2) return body;
        const { serverStateOut: _left, ...rest } = body;
        return rest;
      },
    }),
  );
  t.deepEqual(codes(report), at(2, 'RULE_CONFIG', 'AGGREGATION_MISMATCH'));
  t.regex(report.problems[0].message, /its server optimizer keeps state, but the record names none/);
  t.regex(report.problems[1].message, /gives state sha256:[0-9a-f]{64}, not the recorded \(none\)/);
});

test("a round whose rule config is not the one the federation's config derives is caught at its open", (t) => {
  const derived = ruleRefFor(CONFIG);
  const variants: RoundClosedBody['rule'][] = [
    // The server optimizer left out: plain median, no state.
    { name: 'median', config: { weightCap: 20, clipping: derived.config.clipping! } },
    // Another server learning rate.
    {
      name: 'median',
      config: {
        ...derived.config,
        serverOptimizer: { ...(derived.config.serverOptimizer as object), lr: '0.25' },
      },
    },
  ];
  for (const rule of variants) {
    const report = audit(federation({ rule }));
    // Each round is consistent with what it announces, which is not what the config gives.
    t.deepEqual(codes(report), [...at(1, 'RULE_CONFIG'), ...at(2, 'RULE_CONFIG')]);
    t.true(report.problems.every((p) => p.kind === 'round-open'));
    t.regex(
      report.problems[0].message,
      /announces rule \{.*\}, but the federation's config gives \{.*"serverOptimizer":/,
    );
    t.deepEqual(
      report.rounds.map((r) => r.aggregation),
      ['verified', 'verified'],
    );
  }
});

test('with sgd, which keeps no state, rounds record none; a record that names one is caught', (t) => {
  const sgd: FederationConfig = {
    ...CONFIG,
    aggregation: { rule: 'fedit', serverOptimizer: { kind: 'sgd', lr: 1.5 } },
  };
  const honest = federation({ config: sgd });
  t.deepEqual(audit(honest).problems, []);
  t.true(
    closedBodies(honest.records).every(
      (b) => b.serverStateIn === undefined && b.serverStateOut === undefined,
    ),
  );
  const report = audit(
    federation({
      config: sgd,
      closed: (round, body, store) =>
        round === 2 ? { ...body, serverStateOut: store(madeUpState(0)) } : body,
    }),
  );
  t.deepEqual(codes(report), at(2, 'RULE_CONFIG', 'AGGREGATION_MISMATCH'));
  t.regex(report.problems[0].message, /records a server state, but its rule config keeps none/);
});

test('a state in whose tensors do not fit the optimizer fails the recomputation, naming the state tensor', (t) => {
  // avgm's state (m only) where adam needs m and v: the coordinator cannot have stepped from it.
  const mOnly = new Map([...madeUpState(0.01)].filter(([key]) => key.startsWith('m:')));
  const report = audit(
    federation({
      closed: (round, body, store) => (round === 2 ? { ...body, serverStateIn: store(mOnly) } : body),
    }),
  );
  // recompute.ts reports every AggregationError of the recomputation as UPDATE_INVALID, the state's too.
  t.deepEqual(codes(report), at(2, 'GLOBAL_MISMATCH', 'UPDATE_INVALID'));
  t.regex(
    report.problems[1].message,
    /the server optimizer's state lacks v:layers\.0\.q_proj\.lora_A\.weight of 8 values/,
  );
  t.is(report.rounds[1].aggregation, 'failed');
});
