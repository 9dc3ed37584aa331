// The verifier holds every counted update to the coordinator's own admission rules: an update the
// coordinator refuses (a non-finite value, a tensor of another shape, a norm above the federation's
// bound, more examples than its limit), planted in a stored log and honestly signed by its
// participant, is caught by the audit in the words of the rule that refuses it.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  admitUpdateTensors,
  aggregateContributions,
  configHash,
  hashTensors,
  selectParticipants,
  signRoundRecord,
  tensorFromF32,
  tensorSchemaOf,
  tensorValues,
  tensorsFromValues,
  verifyRoundLog,
  ZERO_HASH,
  type AdapterSchema,
  type DroppedParticipant,
  type FederationConfig,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type Tensor,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));

const CONFIG: FederationConfig = {
  id: 'fed-admission',
  name: 'admission rules in the audit',
  baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] },
  training: { localSteps: 1, batchSize: 1, lr: 1e-3, cutoffLen: 32, template: 'chat', trainOnInputs: false },
  rounds: 1,
  participantsPerRound: { fraction: 1, minimum: 2 },
  roundDeadlineSeconds: 60,
  minUpdates: 2,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 1, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

const A = 'layers.0.q_proj.lora_A.weight';
const B = 'layers.0.q_proj.lora_B.weight';
const SCHEMA: AdapterSchema = new Map([
  [A, [2, 4]],
  [B, [4, 2]],
]);

/** Tensors of SCHEMA whose every value is `base[i] + delta`, with optional edits. */
function adapter(delta: number, edit: (name: string, values: Float32Array) => void = () => {}) {
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of SCHEMA) {
    const values = Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => Math.sin(i) / 4 + delta);
    edit(name, values);
    tensors.set(name, tensorFromF32(shape, values));
  }
  return tensors;
}

const GLOBAL = adapter(0);

interface Upload {
  tensors: Map<string, Tensor>;
  exampleCount: number;
}

/**
 * A one-round federation as the coordinator logs it: the config record holds `settings` (the
 * federation config, as `fedit coordinator init` writes it, unless told otherwise), p-alice and
 * p-bob are enrolled and selected, and both uploads (each signed by its participant) are counted.
 * The new global adapter is the rule applied to the uploads that fit (bit for bit where all fit).
 */
type Settings = RoundRecordBodies['config']['settings'];
const RECORDED: Settings = { config: JSON.stringify(CONFIG), configHash: configHash(CONFIG) };

function federation(
  bob: Upload,
  { settings = RECORDED, dropped = [] }: { settings?: Settings; dropped?: DroppedParticipant[] } = {},
) {
  const blobs = new Map<string, Map<string, Tensor>>();
  const store = (tensors: Map<string, Tensor>) => {
    const hash = hashTensors(tensors);
    blobs.set(hash, tensors);
    return hash;
  };
  const records: RoundRecord[] = [];
  let round = 0;
  const append = <K extends RoundRecordKind>(kind: K, body: RoundRecordBodies[K]) => {
    if (kind === 'round-open') round++;
    records.push(
      signRoundRecord(
        {
          seq: records.length,
          federation: CONFIG.id,
          round,
          kind,
          prevHash: records.at(-1)?.hash ?? ZERO_HASH,
          time: new Date(Date.parse('2026-04-01T08:00:00.000Z') + records.length * 60_000).toISOString(),
          body,
        } as UnsignedRoundRecord, // K is one kind, and body that kind's: TypeScript cannot correlate the two
        coordinator.secretKey,
      ),
    );
  };
  const globalAdapter = store(GLOBAL);
  append('config', { settings, globalAdapter });
  for (const participant of ['p-alice', 'p-bob'])
    append('enrol', { participant, publicKey: publicKeyHex(participantIdentity(participant)) });
  const selection = {
    seed: 'seed-1',
    fraction: '1',
    minimum: 2,
    selected: selectParticipants('seed-1', ['p-alice', 'p-bob'], '1', 2),
  };
  const rule = { name: 'fedit', config: {} };
  append('round-open', { rule, selection, globalAdapter, deadline: '2026-04-02T00:00:00.000Z' });
  const uploads: [string, Upload][] = [
    ['p-alice', { tensors: adapter(0.01), exampleCount: 12 }],
    ['p-bob', bob],
  ];
  const updates = uploads.map(([participant, { tensors, exampleCount }]) => ({
    participant,
    exampleCount,
    updateHash: store(tensors),
    ...signedUpdate(participantIdentity(participant), {
      federation: CONFIG.id,
      round,
      globalAdapterHash: globalAdapter,
      exampleCount,
      tensors,
    }),
  }));
  const fitting = uploads.filter(([, u]) => fits(u.tensors));
  const out = aggregateContributions(
    'fedit',
    {},
    SCHEMA,
    fitting.map(([participant, u]) => ({
      participant,
      exampleCount: u.exampleCount,
      update: tensorValues(u.tensors),
    })),
  );
  append('round-closed', {
    rule,
    selection,
    updates,
    globalAdapterIn: globalAdapter,
    globalAdapterOut: store(tensorsFromValues(SCHEMA, out)),
    dropped,
    metrics: {},
  });
  return { records, blobs };
}

/** Whether tensors can be aggregated at all (the schema's shapes, finite values). */
function fits(tensors: Map<string, Tensor>): boolean {
  return [...SCHEMA].every(
    ([name, shape]) =>
      tensors.get(name)?.shape.join(',') === shape.join(',') &&
      tensorValues(tensors).get(name)!.every(Number.isFinite),
  );
}

const audit = ({ records, blobs }: ReturnType<typeof federation>) =>
  verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey, blobs: (hash) => blobs.get(hash) });

/** What the coordinator answers at update:commit for these tensors (admission-payload.ts). */
function coordinatorRefusal(tensors: Map<string, Tensor>) {
  const admission = admitUpdateTensors(
    {
      schema: tensorSchemaOf(tensors),
      global: tensorValues(GLOBAL),
      maxUpdateNorm: CONFIG.limits.maxUpdateNorm,
    },
    tensors,
  );
  if (admission.ok) throw new Error('the coordinator admits these tensors');
  return admission.refusal;
}

test('an honest round under the recorded config is verified, limits and all', (t) => {
  const report = audit(federation({ tensors: adapter(-0.02), exampleCount: 30 }));
  t.deepEqual(report.problems, []);
  t.is(report.rounds[0].aggregation, 'verified');
});

test('a stored update with a non-finite value fails the audit in the words the coordinator refuses it with', (t) => {
  const nan = adapter(0.01, (name, values) => {
    if (name === B) values[5] = Number.NaN;
  });
  const refusal = coordinatorRefusal(nan);
  t.is(refusal.code, 'UPDATE_NOT_FINITE');
  const report = audit(federation({ tensors: nan, exampleCount: 30 }));
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['UPDATE_INVALID'],
  );
  t.is(
    report.firstFailure!.message,
    `record 4 (round-closed, round 1): the update of p-bob breaks admission rule UPDATE_NOT_FINITE: ${refusal.message}`,
  );
  t.is(report.rounds[0].aggregation, 'failed');
});

test('a stored update above the recorded norm bound fails the audit; without a recorded config the bound is not guessed', (t) => {
  const far = adapter(0.5); // moves the adapter by 0.5 * sqrt(16) = 2 > 1
  const refusal = coordinatorRefusal(far);
  t.is(refusal.code, 'UPDATE_NORM');
  const report = audit(federation({ tensors: far, exampleCount: 30 }));
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['UPDATE_LIMIT'],
  );
  t.regex(report.firstFailure!.message, /the update of p-bob breaks admission rule UPDATE_NORM: /);
  t.true(report.firstFailure!.message.endsWith(refusal.message));

  const unconfigured = audit(
    federation({ tensors: far, exampleCount: 30 }, { settings: { baseModel: 'tiny' } }),
  );
  t.deepEqual(unconfigured.problems, []);
  t.is(unconfigured.rounds[0].aggregation, 'verified');
  // ...but the audit of a federation folder requires the config, so a coordinator cannot switch the
  // limits off by leaving it out of its log.
  const required = verifyRoundLog(
    federation({ tensors: far, exampleCount: 30 }, { settings: { baseModel: 'tiny' } }).records,
    { coordinatorPublicKey: coordinator.publicKey, requireConfig: true },
  );
  t.deepEqual(
    required.problems.map((p) => p.code),
    ['CONFIG_UNREADABLE'],
  );
  t.regex(required.firstFailure!.message, /holds no federation config/);
});

test('a config record whose config does not parse, or does not hash to its announced hash, fails the audit', (t) => {
  const honest = { tensors: adapter(0.01), exampleCount: 30 };
  t.deepEqual(audit(federation(honest, { settings: { ...RECORDED, configHashVersion: 2 } })).problems, []);

  const garbled = audit(federation(honest, { settings: { ...RECORDED, config: '{"id":' } }));
  t.deepEqual(
    garbled.problems.map((p) => p.code),
    ['CONFIG_UNREADABLE'],
  );

  // The coordinator records one config and announces the hash of another (a lower norm bound).
  const other = configHash({ ...CONFIG, limits: { ...CONFIG.limits, maxUpdateNorm: 1000 } });
  const forked = audit(
    federation(honest, { settings: { ...RECORDED, configHash: other, configHashVersion: 2 } }),
  );
  t.deepEqual(
    forked.problems.map((p) => p.code),
    ['CONFIG_HASH'],
  );
  t.regex(forked.firstFailure!.message, new RegExp(`announces config hash ${other}`));
});

test('a stored update whose tensor has another shape fails the audit as the coordinator refuses its schema', (t) => {
  const transposed = adapter(0.01);
  const a = transposed.get(A)!;
  transposed.set(A, { ...a, shape: [4, 2] });
  const report = audit(federation({ tensors: transposed, exampleCount: 30 }));
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['UPDATE_INVALID'],
  );
  t.regex(
    report.firstFailure!.message,
    /the update of p-bob breaks admission rule UPDATE_SCHEMA: envelope\.tensorSchema: layers\.0\.q_proj\.lora_A\.weight has shape \[4,2\], the global adapter's is \[2,4\]$/,
  );
});

test('an update claiming more examples than the recorded limit is caught from the log alone', (t) => {
  const { records } = federation({ tensors: adapter(0.01), exampleCount: CONFIG.limits.maxExampleCount + 1 });
  const report = verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey });
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['UPDATE_LIMIT'],
  );
  t.regex(
    report.firstFailure!.message,
    /the envelope of p-bob breaks admission rule UPDATE_EXAMPLES: envelope\.exampleCount 1001 is above the federation's limit 1000$/,
  );
});

test('a participant both dropped and counted is caught from the log alone, as the coordinator refuses its commit', (t) => {
  const reason = 'invalid: tensor layers.0.q_proj.lora_B.weight has a non-finite value at index 5';
  const { records } = federation(
    { tensors: adapter(0.01), exampleCount: 30 },
    { dropped: [{ participant: 'p-bob', reason }] },
  );
  const report = verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey });
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['DROPPED_AND_COUNTED'],
  );
  t.is(
    report.firstFailure!.message,
    `record 4 (round-closed, round 1): the update of p-bob breaks admission rule UPDATE_DROPPED: this participant's update was refused in round 1 (${reason}); it can take part again from the next round`,
  );
});
