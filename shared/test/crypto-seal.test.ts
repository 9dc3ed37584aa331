// Sealed chunks (crypto/seal.ts): X25519 + HKDF-SHA256 bound to the envelope digest, AES-256-GCM
// with the chunk index as nonce and (envelope digest, index, count) as associated data.
import { hkdfSync, randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import {
  coordinatorUploadKey,
  CryptoError,
  generateIdentity,
  openChunk,
  participantUploadKey,
  sealChunk,
  SEAL_OVERHEAD_BYTES,
  sha256,
  toHex,
  type UploadKey,
} from '@fedit/shared';

const participant = generateIdentity(new Uint8Array(32).fill(1));
const coordinator = generateIdentity(new Uint8Array(32).fill(2));
const stranger = generateIdentity(new Uint8Array(32).fill(3));
const digest = sha256(new TextEncoder().encode('envelope A'));
const otherDigest = sha256(new TextEncoder().encode('envelope B'));

const sender = (envelopeDigest = digest, chunkCount = 4) =>
  participantUploadKey(participant.box, coordinator.box.publicKey, envelopeDigest, chunkCount);
const receiver = (envelopeDigest = digest, chunkCount = 4) =>
  coordinatorUploadKey(coordinator.box, participant.box.publicKey, envelopeDigest, chunkCount);

function assertOpenFails(t: ExecutionContext, key: UploadKey, index: number, sealed: Uint8Array): void {
  const error = t.throws(() => openChunk(key, index, sealed), { instanceOf: CryptoError });
  t.is(error.code, 'CRYPTO_OPEN_FAILED');
  t.regex(error.message, /failed authentication|shorter than/);
}

test('node:crypto HKDF matches RFC 5869 test case 1', (t) => {
  const okm = hkdfSync(
    'sha256',
    Buffer.alloc(22, 0x0b),
    Buffer.from('000102030405060708090a0b0c', 'hex'),
    Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex'),
    42,
  );
  t.is(
    Buffer.from(okm).toString('hex'),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

test('participant and coordinator derive the same key; it differs per envelope and per pair', (t) => {
  t.deepEqual(sender().key, receiver().key);
  t.notDeepEqual(sender(otherDigest).key, sender().key);
  const strangerKey = participantUploadKey(stranger.box, coordinator.box.publicKey, digest, 4);
  t.notDeepEqual(strangerKey.key, sender().key);
});

test('chunks round-trip, including an empty chunk and a 4 MiB chunk', (t) => {
  const chunks = [
    new Uint8Array(0),
    new Uint8Array(randomBytes(1000)),
    new Uint8Array(randomBytes(4 * 1024 * 1024)),
    Uint8Array.of(7),
  ];
  const key = sender(digest, chunks.length);
  const open = receiver(digest, chunks.length);
  chunks.forEach((chunk, index) => {
    const sealed = sealChunk(key, index, chunk);
    t.is(sealed.byteLength, chunk.byteLength + SEAL_OVERHEAD_BYTES);
    if (chunk.byteLength > 32) t.notDeepEqual(sealed.subarray(0, 32), chunk.subarray(0, 32));
    const plain = openChunk(open, index, sealed);
    t.is(plain.constructor, Uint8Array);
    t.true(Buffer.from(plain).equals(Buffer.from(chunk)), `chunk ${index}`);
  });
});

test('sealing is deterministic for one upload, so a resent chunk is byte-identical', (t) => {
  const chunk = new Uint8Array(randomBytes(100));
  t.deepEqual(sealChunk(sender(), 1, chunk), sealChunk(sender(), 1, chunk));
  t.notDeepEqual(sealChunk(sender(), 1, chunk), sealChunk(sender(), 2, chunk));
});

test('a flipped bit anywhere in the ciphertext or the tag is detected', (t) => {
  const sealed = sealChunk(sender(), 2, new Uint8Array(randomBytes(64)));
  for (let i = 0; i < sealed.byteLength; i++) {
    const tampered = sealed.slice();
    tampered[i] ^= 0x80;
    assertOpenFails(t, receiver(), 2, tampered);
  }
});

test('a chunk opened at another index, upload or chunk count fails', (t) => {
  const sealed = sealChunk(sender(), 1, new Uint8Array(randomBytes(64)));
  assertOpenFails(t, receiver(), 0, sealed);
  assertOpenFails(t, receiver(), 2, sealed);
  assertOpenFails(t, receiver(otherDigest), 1, sealed);
  assertOpenFails(t, receiver(digest, 5), 1, sealed);
  t.notThrows(() => openChunk(receiver(), 1, sealed));
});

test('a chunk sealed by another participant, or for another coordinator, fails', (t) => {
  const plaintext = new Uint8Array(randomBytes(64));
  const byStranger = sealChunk(
    participantUploadKey(stranger.box, coordinator.box.publicKey, digest, 4),
    0,
    plaintext,
  );
  assertOpenFails(t, receiver(), 0, byStranger);
  const forStranger = sealChunk(
    participantUploadKey(participant.box, stranger.box.publicKey, digest, 4),
    0,
    plaintext,
  );
  assertOpenFails(t, receiver(), 0, forStranger);
});

test('a truncated or extended chunk fails, and so does one shorter than the tag', (t) => {
  const sealed = sealChunk(sender(), 0, new Uint8Array(randomBytes(64)));
  assertOpenFails(t, receiver(), 0, sealed.subarray(0, sealed.byteLength - 1));
  assertOpenFails(t, receiver(), 0, sealed.subarray(1));
  assertOpenFails(t, receiver(), 0, Buffer.concat([sealed, Uint8Array.of(0)]));
  const error = t.throws(() => openChunk(receiver(), 0, sealed.subarray(0, 15)), { instanceOf: CryptoError });
  t.regex(
    error.message,
    /chunk 0 of 4 of upload [0-9a-f]{16} is 15 bytes, shorter than the 16-byte authentication tag/,
  );
});

test('the error names the chunk and the upload', (t) => {
  const sealed = sealChunk(sender(), 3, new Uint8Array(10));
  sealed[0] ^= 1;
  const error = t.throws(() => openChunk(receiver(), 3, sealed), { instanceOf: CryptoError });
  t.is(error.field, 'chunk 3');
  t.true(
    error.message.startsWith(`chunk 3 of 4 of upload ${toHex(digest).slice(0, 16)} failed authentication`),
  );
});

test('indices outside the upload, and invalid chunk counts, are refused before any crypto', (t) => {
  for (const index of [-1, 4, 1.5, Number.NaN]) {
    t.like(
      t.throws(() => sealChunk(sender(), index, new Uint8Array(1)), { instanceOf: CryptoError }),
      {
        code: 'CRYPTO_CHUNK_INDEX',
      },
    );
    t.like(
      t.throws(() => openChunk(receiver(), index, new Uint8Array(17)), { instanceOf: CryptoError }),
      {
        code: 'CRYPTO_CHUNK_INDEX',
      },
    );
  }
  for (const count of [0, -1, 2.5]) {
    t.like(
      t.throws(() => sender(digest, count), { instanceOf: CryptoError }),
      { code: 'CRYPTO_CHUNK_INDEX' },
    );
  }
});

test('a low-order peer public key is refused instead of giving an all-zero shared secret', (t) => {
  for (const lowOrder of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    const error = t.throws(() => coordinatorUploadKey(coordinator.box, lowOrder, digest, 1), {
      instanceOf: CryptoError,
    });
    t.is(error.code, 'CRYPTO_KEY_AGREEMENT');
  }
});

test('wrong-length keys and digests throw CRYPTO_LENGTH', (t) => {
  t.like(
    t.throws(() => participantUploadKey(participant.box, new Uint8Array(31), digest, 1), {
      instanceOf: CryptoError,
    }),
    {
      code: 'CRYPTO_LENGTH',
    },
  );
  t.like(
    t.throws(() => participantUploadKey(participant.box, coordinator.box.publicKey, digest.subarray(1), 1), {
      instanceOf: CryptoError,
    }),
    {
      code: 'CRYPTO_LENGTH',
      field: 'envelope digest',
    },
  );
});

test('throughput of sealing and opening 4 MiB chunks', (t) => {
  const chunkBytes = 4 * 1024 * 1024;
  const count = 16;
  const chunk = new Uint8Array(randomBytes(chunkBytes));
  const key = sender(digest, count);
  const open = receiver(digest, count);
  const sealed: Uint8Array[] = [];
  sealChunk(key, 0, chunk); // warm up
  let start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) sealed.push(sealChunk(key, i, chunk));
  const sealSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) openChunk(open, i, sealed[i]);
  const openSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const mib = (count * chunkBytes) / 2 ** 20;
  t.log(
    `AES-256-GCM, ${count} chunks of 4 MiB: seal ${(mib / sealSeconds).toFixed(0)} MiB/s, open ${(mib / openSeconds).toFixed(0)} MiB/s`,
  );
  t.pass();
});
