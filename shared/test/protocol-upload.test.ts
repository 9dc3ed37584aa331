// One update's whole path through shared/: participant builds, signs, chunks and seals; the
// coordinator validates, verifies, checks and opens each chunk, and reassembles the payload. The
// messages go through the socket.io codec in between, as they would on the wire.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import {
  checkChunkAgainstEnvelope,
  chunkCountFor,
  coordinatorUploadKey,
  Decoder,
  Encoder,
  envelopeId,
  generateIdentity,
  MIN_CHUNK_BYTES,
  openChunk,
  PacketType,
  participantUploadKey,
  sealChunk,
  sha256,
  sha256Hash,
  validateClientPayload,
  verifyEnvelope,
  type ClientEventName,
  type Packet,
  type UpdateChunk,
} from '@fedit/shared';
import { signedPayloadEnvelope } from './helpers/envelopes.ts';

const participant = generateIdentity();
const coordinator = generateIdentity();

/** Sends an event through the codec and returns the payload the other side's handler would get. */
function overTheWire(event: ClientEventName, payload: unknown): unknown {
  const [frame] = new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: [event, payload], id: 1 });
  const decoder = new Decoder();
  let packet: Packet | undefined;
  decoder.on('decoded', (p) => (packet = p));
  decoder.add(Buffer.from(frame)); // as Node's ws hands frames over
  const [name, received] = packet!.data as [ClientEventName, unknown];
  return validateClientPayload(name, received);
}

test('an update travels from participant to coordinator intact, and tampering is caught', (t) => {
  const payload = new Uint8Array(randomBytes(5 * MIN_CHUNK_BYTES + 123));
  const chunkBytes = 2 * MIN_CHUNK_BYTES;
  const chunkCount = chunkCountFor(payload.byteLength, chunkBytes);
  t.is(chunkCount, 3);

  // Participant.
  const signed = signedPayloadEnvelope(participant, payload, { round: 0, chunkBytes });
  const id = envelopeId(signed);
  const sendKey = participantUploadKey(
    participant.box,
    coordinator.box.publicKey,
    sha256FromId(id),
    chunkCount,
  );
  const chunks: UpdateChunk[] = [];
  for (let index = 0; index < chunkCount; index++) {
    const data = sealChunk(sendKey, index, payload.subarray(index * chunkBytes, (index + 1) * chunkBytes));
    chunks.push({ uploadId: id, index, data, sha256: sha256(data) });
  }

  // Coordinator.
  const begin = overTheWire('update:begin', { envelope: signed }) as { envelope: unknown };
  const { envelope, digest, id: uploadId } = verifyEnvelope(begin.envelope);
  t.is(uploadId, id);
  const openKey = coordinatorUploadKey(
    coordinator.box,
    participant.box.publicKey,
    digest,
    envelope.chunkCount,
  );
  const parts = chunks.map((chunk) => {
    const received = overTheWire('update:chunk', chunk) as UpdateChunk;
    checkChunkAgainstEnvelope(envelope, received);
    return openChunk(openKey, received.index, received.data);
  });
  const reassembled = Buffer.concat(parts);
  t.is(sha256Hash(reassembled), envelope.payloadHash);

  // Two chunks swapped in position, or one replayed into another upload, do not open.
  t.throws(() => openChunk(openKey, 0, chunks[1].data), { code: 'CRYPTO_OPEN_FAILED' });
  const otherUpload = coordinatorUploadKey(
    coordinator.box,
    participant.box.publicKey,
    sha256(digest),
    envelope.chunkCount,
  );
  t.throws(() => openChunk(otherUpload, 0, chunks[0].data), { code: 'CRYPTO_OPEN_FAILED' });
});

function sha256FromId(id: string): Uint8Array {
  return new Uint8Array(Buffer.from(id.slice('sha256:'.length), 'hex'));
}
