// The admission rules (rounds/admission.ts, admission-payload.ts) on their own: no coordinator, no
// socket, no log. Each rule refuses with the code, field and message participants see on the wire,
// and lets an honest update through. The coordinator's fault tests (coordinator/test/faults-*.test.ts)
// drive the same rules over the network; the verifier holds logged updates to them
// (rounds-verify-admission.test.ts).

import test from 'ava';
import {
  DEFAULT_CHUNK_BYTES,
  admitCommit,
  admitEnvelope,
  admitPayload,
  admitUpdateTensors,
  chunkCountFor,
  envelopeId,
  serializeSafetensors,
  sha256Hash,
  signEnvelope,
  tensorFromF32,
  tensorSchemaOf,
  tensorToF32,
  type Admission,
  type ContentHash,
  type EnvelopeContext,
  type RoundView,
  type SignedEnvelope,
  type Tensor,
  type UpdateEnvelope,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex } from './helpers/envelopes.ts';

const alice = participantIdentity('alice');
const ALICE = 'a1'.repeat(16);
const FEDERATION = 'fed-test';
const GLOBAL_HASH = `sha256:${'1'.repeat(64)}` as ContentHash;
const GLOBAL = new Map<string, Tensor>([
  ['layer.a', tensorFromF32([2, 3], Float32Array.of(1, 2, 3, 4, 5, 6))],
  ['layer.b', tensorFromF32([3], Float32Array.of(0, 0, 0))],
]);
const GLOBAL_F32 = new Map([...GLOBAL].map(([n, t]) => [n, tensorToF32(t)]));

function openRound(changes: Partial<RoundView> = {}): RoundView {
  return {
    round: 3,
    selected: new Set([ALICE]),
    globalAdapter: GLOBAL_HASH,
    schema: new Map([...GLOBAL].map(([n, t]) => [n, t.shape])),
    counted: new Map(),
    dropped: [],
    ...changes,
  };
}

function context(changes: Partial<EnvelopeContext> = {}): EnvelopeContext {
  return {
    federation: FEDERATION,
    participant: { id: ALICE, signKey: publicKeyHex(alice) },
    round: openRound(),
    limits: { maxExampleCount: 1000, maxUploadBytes: 1 << 20 },
    envelopeLogged: () => false,
    ...changes,
  };
}

/** The global adapter with `delta` added to every value. */
function moved(delta: number): Map<string, Tensor> {
  return new Map(
    [...GLOBAL].map(([n, t]) => [
      n,
      tensorFromF32(
        t.shape,
        tensorToF32(t).map((v) => v + delta),
      ),
    ]),
  );
}

/** Alice's signed envelope and canonical payload for `tensors`, with `fields` changed before signing. */
function update(
  tensors: ReadonlyMap<string, Tensor> = moved(0.01),
  fields: Partial<UpdateEnvelope> = {},
): { envelope: SignedEnvelope; id: string; payload: Uint8Array } {
  const payload = serializeSafetensors(tensors);
  const envelope = signEnvelope(
    {
      version: 1,
      federation: FEDERATION,
      round: 3,
      participant: alice.sign.publicKey,
      globalAdapterHash: GLOBAL_HASH,
      exampleCount: 10,
      tensorSchema: tensorSchemaOf(tensors),
      payloadHash: sha256Hash(payload),
      payloadBytes: payload.byteLength,
      chunkBytes: DEFAULT_CHUNK_BYTES,
      chunkCount: chunkCountFor(payload.byteLength, DEFAULT_CHUNK_BYTES),
      createdAt: Date.parse('2026-03-01T09:00:00.000Z'),
      ...fields,
    },
    alice,
  );
  return { envelope, id: envelopeId(envelope), payload };
}

function refusal<T>(admission: Admission<T>) {
  if (admission.ok) throw new Error('admitted, but a refusal was expected');
  return admission.refusal;
}

test('admits an honest envelope and names the round it is for', (t) => {
  const round = openRound();
  const { envelope, id } = update();
  t.deepEqual(admitEnvelope(context({ round }), envelope, id), { ok: true, value: round });
});

const honest = update();
const envelopeRefusals: [string, () => Admission<unknown>, string, string, RegExp][] = [
  [
    'a key other than the authenticated one',
    () =>
      admitEnvelope(
        context({ participant: { id: ALICE, signKey: '00'.repeat(32) } }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_PARTICIPANT',
    'envelope.participant',
    /^envelope\.participant [0-9a-f]{64} is not this participant's signing key [0-9a-f]{64}$/,
  ],
  [
    'another federation',
    () => admitEnvelope(context({ federation: 'fed-other' }), honest.envelope, honest.id),
    'UPDATE_FEDERATION',
    'envelope.federation',
    /envelope\.federation is fed-test, this is fed-other/,
  ],
  [
    'no round open',
    () => admitEnvelope(context({ round: undefined }), honest.envelope, honest.id),
    'ROUND_CLOSED',
    'envelope.round',
    /^round 3 is not open$/,
  ],
  [
    'another round',
    () => admitEnvelope(context({ round: openRound({ round: 4 }) }), honest.envelope, honest.id),
    'ROUND_CLOSED',
    'envelope.round',
    /round 3 is not open \(round 4 is\)/,
  ],
  [
    'a participant not selected',
    () =>
      admitEnvelope(
        context({ round: openRound({ selected: new Set(['b0'.repeat(16)]) }) }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_NOT_SELECTED',
    'envelope.round',
    /not selected for round 3/,
  ],
  [
    'a stale global adapter',
    () =>
      admitEnvelope(
        context({ round: openRound({ globalAdapter: `sha256:${'2'.repeat(64)}` }) }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_STALE',
    'envelope.globalAdapterHash',
    /not the adapter this round trains from/,
  ],
  [
    'too many examples',
    () =>
      admitEnvelope(
        context({ limits: { maxExampleCount: 9, maxUploadBytes: 1 << 20 } }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_EXAMPLES',
    'envelope.exampleCount',
    /exampleCount 10 is above the federation's limit 9/,
  ],
  [
    'too many bytes',
    () =>
      admitEnvelope(
        context({ limits: { maxExampleCount: 1000, maxUploadBytes: 8 } }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_TOO_LARGE',
    'envelope.payloadBytes',
    /above the limit of 8/,
  ],
  [
    'an envelope the log already counts',
    () => admitEnvelope(context({ envelopeLogged: (id) => id === honest.id }), honest.envelope, honest.id),
    'UPDATE_REPLAY',
    'envelope',
    /already counted/,
  ],
  [
    'an envelope this round already counts',
    () =>
      admitEnvelope(
        context({
          round: openRound({ counted: new Map([['c0'.repeat(16), { envelopeDigest: honest.id }]]) }),
        }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_REPLAY',
    'envelope',
    /already counted/,
  ],
  [
    'a second update of a counted participant',
    () =>
      admitEnvelope(
        context({ round: openRound({ counted: new Map([[ALICE, { envelopeDigest: 'sha256:other' }]]) }) }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_DUPLICATE',
    'envelope',
    /already counted in round 3/,
  ],
  [
    'a dropped participant',
    () =>
      admitEnvelope(
        context({ round: openRound({ dropped: [{ participant: ALICE, reason: 'norm bound' }] }) }),
        honest.envelope,
        honest.id,
      ),
    'UPDATE_DROPPED',
    'envelope',
    /refused in round 3 \(norm bound\); it can take part again from the next round/,
  ],
  [
    'a tensor the global adapter lacks',
    () => {
      const u = update(new Map([...moved(0.01), ['layer.c', tensorFromF32([1], Float32Array.of(0))]]));
      return admitEnvelope(context(), u.envelope, u.id);
    },
    'UPDATE_SCHEMA',
    'envelope.tensorSchema',
    /has layer\.c, which the global adapter does not/,
  ],
  [
    'a tensor of the global adapter missing',
    () => {
      const u = update(new Map([...moved(0.01)].slice(0, 1)));
      return admitEnvelope(context(), u.envelope, u.id);
    },
    'UPDATE_SCHEMA',
    'envelope.tensorSchema',
    /lacks tensors of the global adapter/,
  ],
  [
    'a tensor of another shape',
    () => {
      const u = update(
        new Map([...moved(0.01)].map(([n, t]) => [n, n === 'layer.a' ? { ...t, shape: [3, 2] } : t])),
      );
      return admitEnvelope(context(), u.envelope, u.id);
    },
    'UPDATE_SCHEMA',
    'envelope.tensorSchema',
    /layer\.a has shape \[3,2\], the global adapter's is \[2,3\]/,
  ],
];
for (const [what, admit, code, field, message] of envelopeRefusals) {
  test(`refuses an envelope with ${what}`, (t) => {
    const r = refusal(admit());
    t.like(r, { code, field });
    t.regex(r.message, message);
  });
}

test('the first rule broken is the one named: another federation before not selected', (t) => {
  const r = refusal(
    admitEnvelope(
      context({ federation: 'fed-other', round: openRound({ selected: new Set() }) }),
      honest.envelope,
      honest.id,
    ),
  );
  t.is(r.code, 'UPDATE_FEDERATION');
});

test('at commit, a participant counted or dropped since its begin is refused, naming the upload', (t) => {
  const counted = openRound({ counted: new Map([[ALICE, { envelopeDigest: honest.id }]]) });
  t.like(refusal(admitCommit(counted, ALICE)), { code: 'UPDATE_DUPLICATE', field: 'payload.uploadId' });
  const dropped = openRound({ dropped: [{ participant: ALICE, reason: 'late' }] });
  t.like(refusal(admitCommit(dropped, ALICE)), { code: 'UPDATE_DROPPED', field: 'payload.uploadId' });
  const round = openRound();
  t.deepEqual(admitCommit(round, ALICE), { ok: true, value: round });
});

test('admits the signed canonical payload and gives its tensors', (t) => {
  const { envelope, payload } = update();
  const admitted = admitPayload(envelope, payload);
  t.true(admitted.ok);
  if (admitted.ok) t.deepEqual([...admitted.value.keys()], ['layer.a', 'layer.b']);
});

test('refuses a payload that is not the signed one: another length or another hash', (t) => {
  const { envelope, payload } = update();
  const shorter = refusal(admitPayload(envelope, payload.subarray(0, payload.length - 4)));
  t.like(shorter, { code: 'UPDATE_PAYLOAD', field: 'payload' });
  const flipped = payload.slice();
  flipped[flipped.length - 1] ^= 1;
  t.like(refusal(admitPayload(envelope, flipped)), {
    code: 'UPDATE_PAYLOAD',
    message: 'the assembled update does not match envelope.payloadHash',
  });
});

test('refuses a signed payload that is not safetensors, or not in the canonical layout', (t) => {
  const garbage = new Uint8Array(64).fill(7);
  const notSafetensors = refusal(
    admitPayload({ payloadHash: sha256Hash(garbage), payloadBytes: garbage.length }, garbage),
  );
  t.is(notSafetensors.code, 'UPDATE_FORMAT');
  t.regex(notSafetensors.message, /not a valid safetensors file/);
  const withMetadata = serializeSafetensors(moved(0.01), { note: 'hi' });
  const nonCanonical = refusal(
    admitPayload({ payloadHash: sha256Hash(withMetadata), payloadBytes: withMetadata.length }, withMetadata),
  );
  t.like(nonCanonical, {
    code: 'UPDATE_FORMAT',
    message: 'the update is not a canonical safetensors file (names ascending, no metadata)',
  });
});

const tensorsContext = (maxUpdateNorm = 1) => ({
  schema: tensorSchemaOf(GLOBAL),
  global: GLOBAL_F32,
  maxUpdateNorm,
});

test('admits tensors of the schema within the norm bound, as float32 values', (t) => {
  const admitted = admitUpdateTensors(tensorsContext(), moved(0.25));
  t.true(admitted.ok);
  if (admitted.ok) t.deepEqual([...admitted.value.get('layer.b')!], [0.25, 0.25, 0.25]);
  // 9 values moved by exactly 1: an L2 distance of exactly 3 is within a bound of 3
  t.true(admitUpdateTensors(tensorsContext(3), moved(1)).ok);
});

test('refuses tensors beyond the norm bound, naming the distance', (t) => {
  const r = refusal(admitUpdateTensors(tensorsContext(2.9), moved(1)));
  t.like(r, { code: 'UPDATE_NORM', field: 'payload' });
  t.regex(r.message, /moves the adapter by 3\.000 \(L2\), above the federation's bound 2\.9/);
});

test('refuses a non-finite value, naming the tensor and the index', (t) => {
  const tensors = moved(0.01);
  const a = tensorToF32(tensors.get('layer.a')!);
  a[4] = Number.NaN;
  tensors.set('layer.a', tensorFromF32([2, 3], a));
  t.like(refusal(admitUpdateTensors(tensorsContext(), tensors)), {
    code: 'UPDATE_NOT_FINITE',
    message: 'tensor layer.a has a non-finite value at index 4',
  });
});

test('refuses tensors that differ from the schema: missing, another dtype, or one more', (t) => {
  const missing = new Map([...moved(0.01)].slice(1));
  t.like(refusal(admitUpdateTensors(tensorsContext(), missing)), {
    code: 'UPDATE_SCHEMA',
    message: "tensor layer.a differs from the envelope's schema",
  });
  const f16 = moved(0.01);
  f16.set('layer.b', { dtype: 'F16', shape: [3], data: new Uint8Array(6) });
  t.like(refusal(admitUpdateTensors(tensorsContext(), f16)), { code: 'UPDATE_SCHEMA' });
  const extra = new Map([...moved(0.01), ['layer.c', tensorFromF32([1], Float32Array.of(0))]]);
  t.like(refusal(admitUpdateTensors(tensorsContext(), extra)), {
    code: 'UPDATE_SCHEMA',
    message: 'the update has tensors the envelope does not announce',
  });
});
