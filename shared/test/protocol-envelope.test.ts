// The signed update envelope (protocol/envelope.ts).
import test from 'ava';
import {
  envelopeDigest,
  envelopeId,
  generateIdentity,
  ProtocolError,
  sha256Hash,
  signEnvelope,
  toHex,
  verifyEnvelope,
  type SignedEnvelope,
  type UpdateEnvelope,
} from '@fedit/shared';

const participant = generateIdentity(new Uint8Array(32).fill(4));
const HASH_A = sha256Hash(new TextEncoder().encode('global adapter'));
const HASH_B = sha256Hash(new TextEncoder().encode('update payload'));

function makeEnvelope(overrides: Partial<UpdateEnvelope> = {}): UpdateEnvelope {
  return {
    version: 1,
    federation: 'support-tickets',
    round: 3,
    participant: participant.sign.publicKey,
    globalAdapterHash: HASH_A,
    exampleCount: 1200,
    tensorSchema: [
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        shape: [8, 576],
        dtype: 'F32',
      },
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
        shape: [576, 8],
        dtype: 'F32',
      },
    ],
    payloadHash: HASH_B,
    payloadBytes: 3 * 1024 * 1024 + 5,
    chunkBytes: 1024 * 1024,
    chunkCount: 4,
    createdAt: Date.UTC(2026, 2, 1),
    ...overrides,
  };
}

test('a signed envelope verifies, and its id is the sha256 of its canonical content', (t) => {
  const signed = signEnvelope(makeEnvelope(), participant);
  t.is(signed.signature.byteLength, 64);
  const { envelope, digest, id } = verifyEnvelope(signed);
  t.deepEqual(envelope, signed);
  t.deepEqual(digest, envelopeDigest(signed));
  t.is(id, `sha256:${toHex(digest)}`);
  t.is(envelopeId(makeEnvelope()), id);
});

test('the digest ignores the signature and key order, and changes with every field', (t) => {
  const base = makeEnvelope();
  const signed = signEnvelope(base, participant);
  t.deepEqual(envelopeDigest(signed), envelopeDigest(base));
  const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as UpdateEnvelope;
  t.deepEqual(envelopeDigest(reordered), envelopeDigest(base));

  const variants: Partial<UpdateEnvelope>[] = [
    { federation: 'other' },
    { round: 4 },
    { participant: generateIdentity().sign.publicKey },
    { globalAdapterHash: HASH_B },
    { exampleCount: 1201 },
    { tensorSchema: [{ name: 'a', shape: [1], dtype: 'F32' }] },
    { tensorSchema: [{ ...base.tensorSchema[0], dtype: 'BF16' }, base.tensorSchema[1]] },
    { tensorSchema: [{ ...base.tensorSchema[0], shape: [576, 8] }, base.tensorSchema[1]] },
    { payloadHash: HASH_A },
    { payloadBytes: base.payloadBytes + 1 },
    { chunkBytes: 2 * 1024 * 1024 },
    { chunkCount: 5 },
    { createdAt: base.createdAt + 1 },
  ];
  const ids = new Set([envelopeId(base), ...variants.map((v) => envelopeId(makeEnvelope(v)))]);
  t.is(ids.size, variants.length + 1);
});

test('altering any field after signing breaks the signature', (t) => {
  const signed = signEnvelope(makeEnvelope(), participant);
  const altered: Partial<SignedEnvelope>[] = [
    { round: 2 },
    { exampleCount: 999_999 },
    { payloadHash: HASH_A },
    { tensorSchema: [signed.tensorSchema[0]] },
    { createdAt: signed.createdAt + 1 },
  ];
  for (const change of altered) {
    const error = t.throws(() => verifyEnvelope({ ...signed, ...change }), { instanceOf: ProtocolError });
    t.is(error.code, 'PROTOCOL_SIGNATURE');
    t.is(error.field, 'envelope.signature');
  }
  const flipped = signed.signature.slice();
  flipped[10] ^= 1;
  t.throws(() => verifyEnvelope({ ...signed, signature: flipped }), { code: 'PROTOCOL_SIGNATURE' });
});

test('an envelope claiming another participant fails: the signature is checked against envelope.participant', (t) => {
  const signed = signEnvelope(makeEnvelope(), participant);
  const impostor = generateIdentity();
  t.throws(() => verifyEnvelope({ ...signed, participant: impostor.sign.publicKey }), {
    code: 'PROTOCOL_SIGNATURE',
  });
});

test('signEnvelope refuses an envelope it would not accept, and a participant key that is not its own', (t) => {
  const error = t.throws(() => signEnvelope(makeEnvelope({ exampleCount: 0 }), participant), {
    instanceOf: ProtocolError,
  });
  t.is(error.field, 'envelope.exampleCount');
  const other = t.throws(() => signEnvelope(makeEnvelope(), generateIdentity()), {
    instanceOf: ProtocolError,
  });
  t.is(other.code, 'PROTOCOL_INCONSISTENT');
  t.is(other.field, 'envelope.participant');
});

test('signing the same content twice gives the same id whatever the signature bytes', (t) => {
  const a = signEnvelope(makeEnvelope(), participant);
  const b = signEnvelope({ ...makeEnvelope(), signature: new Uint8Array(64) } as UpdateEnvelope, participant);
  t.deepEqual(a.signature, b.signature); // Ed25519 is deterministic for one key
  t.is(verifyEnvelope(a).id, verifyEnvelope(b).id);
});

test('verifyEnvelope validates structure before checking the signature', (t) => {
  const signed = signEnvelope(makeEnvelope(), participant);
  const error = t.throws(() => verifyEnvelope({ ...signed, chunkCount: 3 }), { instanceOf: ProtocolError });
  t.is(error.code, 'PROTOCOL_INCONSISTENT');
  t.is(error.field, 'envelope.chunkCount');
});
