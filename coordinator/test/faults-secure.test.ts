// Hostile and confused peers against a secure round on the real coordinator (hand-built peers,
// helpers/peer.ts): a plaintext update, a masked input before the share phase, an I32 tensor
// smuggled into an update, phase messages out of their phase or for another round, a malformed or
// forged advert: each refused with its code and field, nothing stored. Nobody advertises validly,
// so the round aborts visibly once the key phase ends, nothing unmasked. And in a plaintext
// federation a masked input is refused as what it is not.

import test from 'ava';
import { maskedInputTensors, type RoundOpen, type Tensor } from '@fedit/shared';
import { logRecords, snapshotBlobs, startTestFederation, assertStoreIntact } from './helpers/federation.ts';
import { Peer, buildUpdate, signRaw, type Ack } from './helpers/peer.ts';

const SECURE = {
  aggregation: { rule: 'fedit', weightCap: 4 },
  training: {
    localSteps: 1,
    batchSize: 1,
    lr: 1e-2,
    cutoffLen: 32,
    template: 'chat' as const,
    trainOnInputs: false,
    scaffold: false,
  },
  secureAggregation: {
    graph: 'complete' as const,
    thresholdFraction: 0.6,
    clipRange: 1,
    scaleBits: 16,
    maxParticipants: 8,
    phaseSeconds: 2,
  },
};

const refused = (ack: Ack) => (ack.ok ? undefined : ack.error);

/** A masked input of `length` words for `open`, as an honest participant would sign it. */
async function maskedUpdate(peer: Peer, open: RoundOpen, length: number) {
  const global = await peer.adapter(open.globalAdapterHash);
  const words = Uint32Array.from({ length }, (_, i) => (i * 2654435761) >>> 0);
  return buildUpdate(peer, open, global, {
    exampleCount: 1,
    tensors: () => maskedInputTensors(words) as Map<string, Tensor>,
    envelope: { tensorSchema: [{ name: 'secagg.masked', shape: [length], dtype: 'I32' }] },
  });
}

function elements(global: Map<string, Tensor>): number {
  let n = 0;
  for (const t of global.values()) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

test('a secure round refuses what is not its phase, plaintext and smuggled updates, and aborts visibly when too few advertise', async (t) => {
  const fed = await startTestFederation(t, SECURE as never);
  const before = snapshotBlobs(fed.root);
  const a = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'a');
  const b = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'b');
  const open = await a.roundOpen(1);
  const global = await a.adapter(open.globalAdapterHash);
  const length = elements(global) + 1;

  // A plaintext update in a secure round: refused at update:begin, before a byte of it.
  const plain = await a.update(open);
  t.like(refused(await a.request('update:begin', { envelope: plain.envelope })), {
    code: 'UPDATE_NOT_MASKED',
    field: 'envelope.tensorSchema',
  });
  // A masked input of the wrong length, and one before the share phase.
  const short = await maskedUpdate(a, open, length - 1);
  t.like(refused(await a.request('update:begin', { envelope: short.envelope })), {
    code: 'UPDATE_NOT_MASKED',
  });
  const early = await maskedUpdate(a, open, length);
  t.like(refused(await a.request('update:begin', { envelope: early.envelope })), { code: 'SECAGG_PHASE' });
  // A masked input that claims its example count: the count must travel masked.
  const counted = await maskedUpdate(a, open, length);
  const raw = signRaw(a, { ...counted.envelope, exampleCount: 7, signature: undefined });
  t.like(refused(await a.request('update:begin', { envelope: raw })), {
    code: 'UPDATE_NOT_MASKED',
    field: 'envelope.exampleCount',
  });
  // An I32 tensor smuggled into an ordinary update's schema: refused at the edge.
  const smuggled = signRaw(a, {
    ...plain.envelope,
    tensorSchema: plain.envelope.tensorSchema.map((s, i) => (i === 0 ? { ...s, dtype: 'I32' } : s)),
    signature: undefined,
  });
  t.like(refused(await a.request('update:begin', { envelope: smuggled })), {
    code: 'PROTOCOL_INCONSISTENT',
    field: 'envelope.tensorSchema[0]',
  });

  // Phase messages out of their phase, or for another round.
  t.like(refused(await a.request('secagg:inbox', { round: 1 })), { code: 'SECAGG_PHASE' });
  t.like(
    refused(await b.request('secagg:reveal', { round: 2, self: [], key: [], signature: new Uint8Array(64) })),
    {
      code: 'SECAGG_PHASE',
      field: 'payload.round',
    },
  );
  // A consistency signature before the unmask record, and one whose signature is not 64 bytes
  // (refused by the validator before the engine sees it).
  t.like(refused(await a.request('secagg:consistency', { round: 1, signature: new Uint8Array(64) })), {
    code: 'SECAGG_PHASE',
  });
  t.like(refused(await a.request('secagg:consistency', { round: 1, signature: new Uint8Array(65) })), {
    code: 'PROTOCOL_RANGE',
    field: 'payload.signature',
  });
  // A malformed advert (31-byte key) and a forged one (not signed by the enrolled key).
  t.like(
    refused(
      await a.request('secagg:advertise', {
        round: 1,
        encryptionKey: new Uint8Array(31),
        maskKey: new Uint8Array(32),
        signature: new Uint8Array(64),
      }),
    ),
    { code: 'PROTOCOL_RANGE', field: 'payload.encryptionKey' },
  );
  const forged = refused(
    await a.request('secagg:advertise', {
      round: 1,
      encryptionKey: new Uint8Array(32).fill(9),
      maskKey: new Uint8Array(32).fill(8),
      signature: new Uint8Array(64).fill(1),
    }),
  );
  t.is(forged?.code, 'SECAGG_SIGNATURE', JSON.stringify(forged));

  // Nobody advertised validly: the key phase ends after phaseSeconds and the round aborts.
  const aborted = await fed.waitFor('round-aborted', (e) => e.round === 1);
  t.regex(aborted.reason, /secure aggregation, advertise phase: .*nothing was unmasked/s);
  t.truthy(
    fed.events.find((e) => e.type === 'secagg-phase' && e.outcome === 'abort' && e.phase === 'advertise'),
  );
  const kinds = (await logRecords(fed.root)).filter((r) => r.round === 1).map((r) => r.kind);
  t.false(
    kinds.some((k) => k.startsWith('secagg-')),
    'no phase record was written',
  );
  await assertStoreIntact(t, fed.root, before, { orphans: 0 });
});

test('in a plaintext federation a masked input is refused as an update of another schema', async (t) => {
  const fed = await startTestFederation(t, { aggregation: { rule: 'fedit' } } as never);
  const a = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'a');
  await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'b');
  const open = await a.roundOpen(1);
  const global = await a.adapter(open.globalAdapterHash);
  const masked = await maskedUpdate(a, open, elements(global) + 1);
  t.like(refused(await a.request('update:begin', { envelope: masked.envelope })), {
    code: 'UPDATE_SCHEMA',
    field: 'envelope.tensorSchema',
  });
});
