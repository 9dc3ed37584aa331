// Updates that are well-formed messages but bad updates: tensors the global adapter does not have
// or of other shapes (announced in the envelope, or hidden in the payload behind an honest-looking
// envelope), NaN and Inf values, an L2 distance above limits.maxUpdateNorm, and example counts
// that are negative, zero, fractional or too large. Each offender is refused with the code and
// field; a participant refused at commit is dropped from the round with the reason in the
// round-closed record; the honest updates are counted and aggregated, and nothing else is stored.
// So is an update whose payload is a valid safetensors file of acceptable tensors in any layout but
// the canonical one, because the audit checks the signed payloadHash against the canonical file.

import test from 'ava';
import {
  MAX_EXAMPLE_COUNT,
  chunkCountFor,
  parseSafetensors,
  sha256Hash,
  signEnvelope,
  tensorFromF32,
  type RoundOpen,
  type Tensor,
} from '@fedit/shared';
import { assertStoreIntact, logRecords, snapshotBlobs, startTestFederation } from './helpers/federation.ts';
import { Peer, signRaw, withEnvelope, type Ack } from './helpers/peer.ts';

const PEERS = 7;

function refusal(ack: Ack): { code: string; field?: string; message: string } | undefined {
  return ack.ok ? undefined : ack.error;
}

/** The tensor map with tensor `name` replaced. */
function replaced(tensors: Map<string, Tensor>, name: string, tensor: Tensor): Map<string, Tensor> {
  return new Map([...tensors].map(([n, t]) => [n, n === name ? tensor : t]));
}

test('bad tensors, non-finite values, norms above the bound and bad example counts are refused; honest updates count', async (t) => {
  const fed = await startTestFederation(t, {
    participantsPerRound: { fraction: 1, minimum: PEERS },
    minUpdates: 2,
    limits: { maxUpdateNorm: 0.5, maxUploadBytes: 1 << 20, maxExampleCount: 10_000 },
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < PEERS; i++)
    peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  const [honest, counter, nan, inf, far, renamed, reshaped] = peers;
  const open: RoundOpen = await honest.roundOpen(1);
  t.is(open.selected.length, PEERS);
  const global = await honest.adapter(open.globalAdapterHash);
  const [first, second] = [...global.keys()].sort();
  const shapeOf = (name: string) => global.get(name)!.shape;

  // ---- refused at update:begin (the participant may still send a good update) ----------------

  const good = await counter.update(open, { exampleCount: 7 });
  const env = good.envelope as unknown as Record<string, unknown>;
  const examples: [unknown, string, string][] = [
    [-1, 'PROTOCOL_RANGE', /must be from 1 to 1000000000, got -1/.source],
    [0, 'PROTOCOL_RANGE', /got 0/.source],
    [2.5, 'PROTOCOL_TYPE', /must be an integer, got 2.5/.source],
    [MAX_EXAMPLE_COUNT + 1, 'PROTOCOL_RANGE', /got 1000000001/.source],
    [2 ** 60, 'PROTOCOL_RANGE', /must be from 1 to/.source],
    ['10', 'PROTOCOL_TYPE', /must be an integer/.source],
  ];
  for (const [exampleCount, code, message] of examples) {
    const error = refusal(
      await counter.request('update:begin', { envelope: signRaw(counter, { ...env, exampleCount }) }),
    );
    t.like(error, { code, field: 'envelope.exampleCount' }, `exampleCount ${String(exampleCount)}`);
    t.regex(error?.message ?? '', new RegExp(message));
  }
  // Within the protocol's range but above the federation's limit, validly signed.
  const tooMany = await counter.update(open, { exampleCount: 10_001 });
  t.like(refusal(await counter.request('update:begin', { envelope: tooMany.envelope })), {
    code: 'UPDATE_EXAMPLES',
    field: 'envelope.exampleCount',
  });

  // Tensors the global adapter does not have, or of another shape, announced in the envelope.
  const extraName = await counter.update(open, {
    tensors: (ts) => new Map([...ts, ['zzz.lora_A.weight', tensorFromF32([1], new Float32Array(1))]]),
  });
  const extra = refusal(await counter.request('update:begin', { envelope: extraName.envelope }));
  t.like(extra, { code: 'UPDATE_SCHEMA', field: 'envelope.tensorSchema' });
  t.regex(extra?.message ?? '', /zzz\.lora_A\.weight, which the global adapter does not/);
  const lacking = await counter.update(open, {
    tensors: (ts) => new Map([...ts].filter(([n]) => n !== first)),
  });
  t.like(refusal(await counter.request('update:begin', { envelope: lacking.envelope })), {
    code: 'UPDATE_SCHEMA',
    field: 'envelope.tensorSchema',
    message: 'envelope.tensorSchema lacks tensors of the global adapter',
  });
  const [rows, cols] = shapeOf(first);
  const wrongShape = await counter.update(open, {
    tensors: (ts) => replaced(ts, first, tensorFromF32([cols, rows], new Float32Array(rows * cols))),
  });
  const shape = refusal(await counter.request('update:begin', { envelope: wrongShape.envelope }));
  t.like(shape, { code: 'UPDATE_SCHEMA', field: 'envelope.tensorSchema' });
  t.regex(
    shape?.message ?? '',
    new RegExp(`${first.replaceAll('.', '\\.')} has shape \\[${cols},${rows}\\]`),
  );

  // ---- refused at update:commit (the participant is dropped from the round) -------------------

  const commitRefusal = async (peer: Peer, options: Parameters<Peer['update']>[1]) =>
    refusal(await peer.upload(await peer.update(open, options)));
  const nanError = await commitRefusal(nan, {
    values: (n, g) => (n === second ? g.map((v, i) => (i === 5 ? NaN : v)) : g),
  });
  t.like(nanError, { code: 'UPDATE_NOT_FINITE', field: 'payload' });
  t.regex(
    nanError?.message ?? '',
    new RegExp(`${second.replaceAll('.', '\\.')} has a non-finite value at index 5`),
  );
  t.like(await commitRefusal(inf, { values: (_, g) => g.map((v, i) => (i === 0 ? -Infinity : v)) }), {
    code: 'UPDATE_NOT_FINITE',
    field: 'payload',
  });
  const farError = await commitRefusal(far, { values: (_, g) => g.map((v) => v + 0.1) });
  t.like(farError, { code: 'UPDATE_NORM', field: 'payload' });
  t.regex(
    farError?.message ?? '',
    /moves the adapter by \d+\.\d{3} \(L2\), above the federation's bound 0\.5/,
  );

  // The envelope announces the global adapter's schema; the payload holds something else.
  const schema = good.envelope.tensorSchema;
  t.like(
    await commitRefusal(renamed, {
      tensors: (ts) => {
        const out = new Map(ts);
        out.set(`${first}x`, out.get(first)!);
        out.delete(first);
        return out;
      },
      envelope: { tensorSchema: schema },
    }),
    {
      code: 'UPDATE_SCHEMA',
      field: 'payload',
      message: `tensor ${first} differs from the envelope's schema`,
    },
  );
  t.like(
    await commitRefusal(reshaped, {
      tensors: (ts) => replaced(ts, first, tensorFromF32([cols, rows], new Float32Array(rows * cols))),
      envelope: { tensorSchema: schema },
    }),
    { code: 'UPDATE_SCHEMA', field: 'payload' },
  );

  // A dropped participant cannot slip a good update into the same round afterwards.
  const retry = refusal(await nan.upload(await nan.update(open)));
  t.like(retry, { code: 'UPDATE_DROPPED', field: 'envelope' });
  t.regex(retry?.message ?? '', /non-finite value/);

  // ---- the honest participants ------------------------------------------------------------------

  t.like(await counter.upload(good), { ok: true });
  t.like(await honest.upload(await honest.update(open, { exampleCount: 3 })), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  t.like(await honest.roundClosed(1), { outcome: 'aggregated', participants: 2 });

  const record = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed');
  if (record?.kind !== 'round-closed') return t.fail('no round-closed record');
  t.deepEqual(record.body.updates.map((u) => u.participant).sort(), [honest.id, counter.id].sort());
  t.deepEqual(record.body.updates.map((u) => u.exampleCount).sort(), [3, 7]);
  const reasons = new Map(record.body.dropped.map((d) => [d.participant, d.reason]));
  t.deepEqual([...reasons.keys()].sort(), [nan.id, inf.id, far.id, renamed.id, reshaped.id].sort());
  t.regex(reasons.get(nan.id)!, /non-finite/);
  t.regex(reasons.get(far.id)!, /above the federation's bound/);
  t.regex(reasons.get(renamed.id)!, /differs from the envelope's schema/);
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});

test('a round whose last participant is refused at commit closes at once, without waiting for the deadline', async (t) => {
  const fed = await startTestFederation(t, { roundDeadlineSeconds: 600 });
  const before = snapshotBlobs(fed.root);
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  const offender = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  t.teardown(() => [honest, offender].forEach((p) => p.close()));
  const open = await honest.roundOpen(1);
  t.like(await honest.upload(await honest.update(open)), { ok: true });
  const ack = await offender.upload(await offender.update(open, { values: (_, g) => g.map(() => NaN) }));
  t.like(ack, { ok: false, error: { code: 'UPDATE_NOT_FINITE' } });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 1);
  t.deepEqual(
    closed.dropped.map((d) => d.participant),
    [offender.id],
  );
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});

/**
 * A valid safetensors file of `tensors` that is not the canonical layout: the header lists the
 * tensors in the given name order (their data in the same order), may carry `__metadata__`, and
 * is padded with `extraSpaces` more spaces than the multiple of 8 needs.
 */
function nonCanonicalSafetensors(
  tensors: Map<string, Tensor>,
  options: { names: string[]; metadata?: Record<string, string>; extraSpaces?: number },
): Uint8Array {
  const header: Record<string, unknown> = options.metadata ? { __metadata__: options.metadata } : {};
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const name of options.names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    data.push(t.data);
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Math.ceil(json.byteLength / 8) * 8 + (options.extraSpaces ?? 0);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(length));
  const padding = Buffer.alloc(length - json.byteLength, 0x20);
  return new Uint8Array(Buffer.concat([prefix, json, padding, ...data]));
}

test('a validly signed update in a non-canonical safetensors layout is refused at commit; the round goes on', async (t) => {
  const fed = await startTestFederation(t, {
    participantsPerRound: { fraction: 1, minimum: 4 },
    minUpdates: 1,
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < 4; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  const [honest, padded, reordered, annotated] = peers;
  const open = await honest.roundOpen(1);
  t.is(open.selected.length, 4);

  // Each offender trains honestly, then serialises the same tensors in another valid layout and
  // signs an envelope over exactly those bytes: only the layout differs from an honest upload.
  const offend = async (peer: Peer, layout: (tensors: Map<string, Tensor>) => Uint8Array) => {
    const honestUpdate = await peer.update(open);
    const tensors = parseSafetensors(honestUpdate.payload).tensors;
    const payload = layout(tensors);
    const reparsed = parseSafetensors(payload, 'the non-canonical payload').tensors;
    t.deepEqual(
      [...reparsed].map(([n, x]) => [n, x.shape, Buffer.from(x.data).toString('hex')]).sort(),
      [...tensors].map(([n, x]) => [n, x.shape, Buffer.from(x.data).toString('hex')]).sort(),
      'the payload is a valid safetensors file of the same tensors',
    );
    t.notDeepEqual(payload, honestUpdate.payload);
    const { envelope: signed } = honestUpdate;
    const envelope = signEnvelope(
      {
        ...signed,
        payloadHash: sha256Hash(payload),
        payloadBytes: payload.byteLength,
        chunkCount: chunkCountFor(payload.byteLength, signed.chunkBytes),
      },
      peer.identity,
    );
    const error = refusal(await peer.upload(withEnvelope(peer, envelope, payload)));
    return { error, sameLength: payload.byteLength === honestUpdate.payload.byteLength };
  };
  const names = (tensors: Map<string, Tensor>) => [...tensors.keys()].sort();
  const refusals = [
    await offend(padded, (ts) => nonCanonicalSafetensors(ts, { names: names(ts), extraSpaces: 16 })),
    await offend(reordered, (ts) => nonCanonicalSafetensors(ts, { names: names(ts).reverse() })),
    await offend(annotated, (ts) =>
      nonCanonicalSafetensors(ts, { names: names(ts), metadata: { format: 'pt' } }),
    ),
  ];
  // A layout of another length than the announced tensors make is refused at update:begin
  // (payload-size.ts); one of the same length, at commit.
  t.true(refusals.some((r) => r.sameLength) && refusals.some((r) => !r.sameLength), 'both kinds are tried');
  for (const { error, sameLength } of refusals) {
    if (!sameLength) {
      t.like(error, { code: 'UPDATE_SIZE', field: 'envelope.payloadBytes' });
      continue;
    }
    t.like(error, { code: 'UPDATE_FORMAT', field: 'payload' });
    t.regex(error?.message ?? '', /not a canonical safetensors file \(names ascending, no metadata\)/);
  }

  // The coordinator keeps serving: the honest update counts and the round aggregates it alone.
  t.like(await honest.upload(await honest.update(open)), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 1);
  t.like(await honest.roundClosed(1), { outcome: 'aggregated', participants: 1 });
  const record = (await logRecords(fed.root)).find((r) => r.kind === 'round-closed');
  if (record?.kind !== 'round-closed') return t.fail('no round-closed record');
  t.deepEqual(
    record.body.updates.map((u) => u.participant),
    [honest.id],
  );
  t.deepEqual(
    record.body.dropped.map((d) => d.participant).sort(),
    [padded.id, reordered.id, annotated.id].sort(),
  );
  for (const d of record.body.dropped)
    t.regex(d.reason, /not a canonical safetensors file|the announced tensors make an update of exactly/);
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});
