// Malformed messages against the real coordinator over loopback: wrong types, missing and extra
// fields, byte strings of the wrong length, requests without an acknowledgement or for events
// that do not exist, a frame that is not MessagePack and one above MAX_FRAME_BYTES. Each offender
// gets a refusal naming the code and the field (or, for frames, loses only its own connection);
// nothing stored changes; the honest participant in the same round is counted and the round
// aggregates both valid updates.

import test, { type ExecutionContext } from 'ava';
import { MAX_FRAME_BYTES, sha256 } from '@fedit/shared';
import {
  assertStoreIntact,
  snapshotBlobs,
  startTestFederation,
  withinLimit,
  type TestFederation,
} from './helpers/federation.ts';
import { Peer, type Ack, type Update } from './helpers/peer.ts';

function assertRefused(
  t: ExecutionContext,
  ack: Ack,
  code: string,
  field: string | undefined,
  message?: RegExp,
): void {
  t.false(ack.ok, `refused with ${code}: ${JSON.stringify(ack)}`);
  if (ack.ok) return;
  t.is(ack.error.code, code, JSON.stringify(ack.error));
  t.is(ack.error.field, field, JSON.stringify(ack.error));
  if (message) t.regex(ack.error.message, message);
}

async function twoParticipants(fed: TestFederation) {
  const honest = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'honest');
  const offender = await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'offender');
  const open = await honest.roundOpen(1);
  await offender.roundOpen(1);
  return { honest, offender, open };
}

test('malformed payloads are refused with the code and field at fault; the connection and the round go on', async (t) => {
  const fed = await startTestFederation(t);
  const before = snapshotBlobs(fed.root);

  // Before authentication: a malformed proof names the field and leaves the challenge unused.
  const stranger = await Peer.connect(fed.target());
  assertRefused(
    t,
    await stranger.request('auth:prove', { participant: new Uint8Array(31), signature: new Uint8Array(64) }),
    'PROTOCOL_RANGE',
    'payload.participant',
    /exactly 32 bytes, got 31/,
  );
  assertRefused(
    t,
    await stranger.request('auth:prove', { participant: 'ab'.repeat(16), signature: new Uint8Array(64) }),
    'PROTOCOL_TYPE',
    'payload.participant',
    /must be bytes/,
  );
  assertRefused(
    t,
    await stranger.request('enrol', { token: new Uint8Array(32), identity: { sign: new Uint8Array(32) } }),
    'PROTOCOL_MISSING',
    'payload.identity.box',
  );
  assertRefused(
    t,
    await stranger.request('federation:info', { x: 1 }),
    'PROTOCOL_UNKNOWN_FIELD',
    'payload.x',
  );
  assertRefused(
    t,
    await stranger.request('adapter:get', { hash: `sha256:${'0'.repeat(64)}`, index: 0 }),
    'AUTH_REQUIRED',
    undefined,
  );

  const { honest, offender, open } = await twoParticipants(fed);
  const good = await offender.update(open);
  const env = good.envelope as unknown as Record<string, unknown>;
  const begin = (envelope: unknown) => offender.request('update:begin', { envelope });

  const cases: [string, unknown, string, string][] = [
    ['not a map', 'envelope', 'PROTOCOL_TYPE', 'envelope'],
    ['round as text', { ...env, round: '1' }, 'PROTOCOL_TYPE', 'envelope.round'],
    ['round negative', { ...env, round: -1 }, 'PROTOCOL_RANGE', 'envelope.round'],
    ['createdAt a float', { ...env, createdAt: 1.5 }, 'PROTOCOL_TYPE', 'envelope.createdAt'],
    ['payloadHash missing', { ...env, payloadHash: undefined }, 'PROTOCOL_MISSING', 'envelope.payloadHash'],
    [
      'payloadHash upper case',
      { ...env, payloadHash: good.envelope.payloadHash.toUpperCase() },
      'PROTOCOL_FORMAT',
      'envelope.payloadHash',
    ],
    ['an extra field', { ...env, extra: true }, 'PROTOCOL_UNKNOWN_FIELD', 'envelope.extra'],
    [
      'participant of 31 bytes',
      { ...env, participant: good.envelope.participant.subarray(1) },
      'PROTOCOL_RANGE',
      'envelope.participant',
    ],
    [
      'signature of 65 bytes',
      { ...env, signature: new Uint8Array(65) },
      'PROTOCOL_RANGE',
      'envelope.signature',
    ],
    ['signature as text', { ...env, signature: 'x'.repeat(64) }, 'PROTOCOL_TYPE', 'envelope.signature'],
    [
      'a dimension of 0',
      {
        ...env,
        tensorSchema: [
          { ...good.envelope.tensorSchema[0], shape: [4, 0] },
          ...good.envelope.tensorSchema.slice(1),
        ],
      },
      'PROTOCOL_RANGE',
      'envelope.tensorSchema[0].shape[1]',
    ],
    [
      'an unknown dtype',
      {
        ...env,
        tensorSchema: [
          { ...good.envelope.tensorSchema[0], dtype: 'F64' },
          ...good.envelope.tensorSchema.slice(1),
        ],
      },
      'PROTOCOL_FORMAT',
      'envelope.tensorSchema[0].dtype',
    ],
    [
      'names out of order',
      { ...env, tensorSchema: [...good.envelope.tensorSchema].reverse() },
      'PROTOCOL_INCONSISTENT',
      'envelope.tensorSchema[1].name',
    ],
    [
      'chunk count off by one',
      { ...env, chunkCount: good.envelope.chunkCount + 1 },
      'PROTOCOL_INCONSISTENT',
      'envelope.chunkCount',
    ],
    ['version 2', { ...env, version: 2 }, 'PROTOCOL_RANGE', 'envelope.version'],
  ];
  for (const [what, envelope, code, field] of cases) {
    const ack = await begin(envelope);
    t.false(ack.ok, what);
    if (!ack.ok) {
      t.is(ack.error.code, code, `${what}: ${JSON.stringify(ack.error)}`);
      t.is(ack.error.field, field, `${what}: ${JSON.stringify(ack.error)}`);
      t.true(
        ack.error.message.startsWith(field),
        `${what}: the message starts with the field: ${ack.error.message}`,
      );
    }
  }
  assertRefused(
    t,
    await offender.request('update:begin', { envelope: env, more: 1 }),
    'PROTOCOL_UNKNOWN_FIELD',
    'payload.more',
  );

  // Chunks of a begun upload.
  const begun = await offender.request('update:begin', { envelope: good.envelope });
  t.like(begun, { ok: true, uploadId: good.id, resumeFrom: 0 });
  const chunk = good.chunk(0);
  const last = good.envelope.chunkCount - 1;
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, sha256: chunk.sha256.subarray(1) }),
    'PROTOCOL_RANGE',
    'payload.sha256',
  );
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, uploadId: 'upload-1' }),
    'PROTOCOL_FORMAT',
    'payload.uploadId',
  );
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, index: 0.5 }),
    'PROTOCOL_TYPE',
    'payload.index',
  );
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, index: last + 1 }),
    'PROTOCOL_RANGE',
    'payload.index',
  );
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, index: last }), // a full-size chunk where the short last one belongs
    'PROTOCOL_INCONSISTENT',
    'payload.data',
  );
  const flipped = chunk.data.slice();
  flipped[3] ^= 1;
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, data: flipped }),
    'PROTOCOL_INCONSISTENT',
    'payload.sha256',
    /send it again/,
  );
  assertRefused(
    t,
    await offender.request('update:chunk', {
      ...chunk,
      data: new Uint8Array(8),
      sha256: sha256(new Uint8Array(8)),
    }),
    'PROTOCOL_RANGE',
    'payload.data',
  );
  assertRefused(
    t,
    await offender.request('update:chunk', { ...chunk, uploadId: `sha256:${'1'.repeat(64)}` }),
    'UPLOAD_UNKNOWN',
    'payload.uploadId',
  );
  assertRefused(
    t,
    await offender.request('update:commit', { uploadId: good.id }),
    'UPLOAD_INCOMPLETE',
    'payload.uploadId',
  );
  assertRefused(
    t,
    await offender.request('adapter:get', { hash: open.globalAdapterHash, index: 1.5 }),
    'PROTOCOL_TYPE',
    'payload.index',
  );
  assertRefused(
    t,
    await offender.request('adapter:get', { hash: `sha256:${'2'.repeat(64)}`, index: 0 }),
    'ADAPTER_UNKNOWN',
    'payload.hash',
  );
  assertRefused(
    t,
    await offender.request('adapter:get', { hash: open.globalAdapterHash, index: 99 }),
    'PROTOCOL_RANGE',
    'payload.index',
  );

  // An event the protocol does not define, and a request without an acknowledgement.
  assertRefused(
    t,
    await offender.request('update:abort', { uploadId: good.id }),
    'PROTOCOL_UNKNOWN_EVENT',
    'event',
  );
  offender.send('update:commit', { uploadId: good.id });
  await withinLimit(
    new Promise<void>((resolve) => offender.socket.once('error', () => resolve())),
    () => 'the error event',
  );
  t.like(offender.errors.at(-1), { code: 'PROTOCOL_ACK' });
  t.regex(offender.errors.at(-1)!.message, /update:commit needs an acknowledgement/);

  // After all that, the offender's connection still works: both updates count.
  t.true(offender.socket.connected);
  const honestUpdate = await honest.update(open);
  t.like(await honest.upload(honestUpdate), { ok: true });
  t.like(await offender.upload(good), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  t.deepEqual(closed.dropped, []);
  t.like(await honest.roundClosed(1), { outcome: 'aggregated', participants: 2 });
  stranger.close();
  honest.close();
  offender.close();
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});

test('a frame that is not MessagePack and a frame above MAX_FRAME_BYTES close only the sender’s connection', async (t) => {
  const fed = await startTestFederation(t);
  const before = snapshotBlobs(fed.root);
  const { honest, offender, open } = await twoParticipants(fed);

  // A bystander that is connected but not authenticated.
  const bystander = await Peer.connect(fed.target());

  // Garbage: 0xc1 is never valid MessagePack.
  const garbage = await Peer.connect(fed.target());
  garbage.socket.io.engine.send(new Uint8Array([0xc1, 0x00, 0x01]) as unknown as string);
  t.is(await garbage.disconnected, 'transport close');

  // The offender starts its upload, then sends one frame above the limit, mid-upload.
  const update: Update = await offender.update(open);
  const partial = await offender.upload(update, 2);
  t.like(partial, { ok: true, resumeFrom: 0 });
  const huge = new Uint8Array(MAX_FRAME_BYTES + 1);
  offender.send(
    'update:chunk',
    { uploadId: update.id, index: 2, data: huge, sha256: sha256(huge) },
    () => {},
  );
  t.is(await offender.disconnected, 'transport close');
  t.truthy(await fed.waitFor('disconnected', (e) => e.participant === offender.id));

  // Everyone else is still served.
  t.true(honest.socket.connected);
  t.true(bystander.socket.connected);
  t.like(await bystander.request('federation:info', {}), { ok: true });
  t.like(await honest.upload(await honest.update(open)), { ok: true });

  // The offender reconnects and resumes where the coordinator says.
  const back = await offender.reconnect();
  const resumed = await back.request('update:begin', { envelope: update.envelope });
  t.like(resumed, { ok: true, uploadId: update.id, resumeFrom: 2 });
  t.like(await back.upload(update), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 1);
  t.is(closed.updates, 2);
  for (const p of [honest, back, bystander]) p.close();
  await fed.coordinator.finished;
  await assertStoreIntact(t, fed.root, before);
});
