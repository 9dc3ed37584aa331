// Sealed chunks: how an update's bytes travel from a participant to the coordinator.
//
//   shared  = X25519(own box secret key, peer box public key)          32 bytes, never all-zero
//   key     = HKDF-SHA256(ikm = shared, salt = envelope digest,
//                         info = "fedit/seal/v1" || participant box pk || coordinator box pk)
//   nonce   = u64 LE chunk index || 4 zero bytes                        12 bytes
//   aad     = envelope digest || u64 LE chunk index || u64 LE chunk count
//   sealed  = AES-256-GCM(key, nonce, aad, chunk) = ciphertext || 16-byte tag
//
// The key is unique to (participant, coordinator, envelope), and the signed envelope fixes the
// payload's hash and chunk size, so a chunk index never encrypts two different plaintexts under
// one key: a counter nonce is safe. The AAD makes a chunk fail to open under any other upload,
// position or chunk count. Node's native AEAD runs at >1 GB/s; tweetnacl's secretbox (DESIGN
// decision 6) manages ~60 MB/s, too slow for a coordinator opening every participant's upload.
// AES-256-GCM rather than ChaCha20-Poly1305 because Electron's BoringSSL has no
// chacha20-poly1305 in createCipheriv, and the client runs inside Electron.
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { assertBytes, toHex } from './bytes.ts';
import { SHA256_BYTES } from './digest.ts';
import { CryptoError } from './errors.ts';
import { BOX_PUBLIC_KEY_BYTES, BOX_SECRET_KEY_BYTES, type KeyPair } from './identity.ts';

/** Bytes a sealed chunk has beyond its plaintext: the GCM tag. */
export const SEAL_OVERHEAD_BYTES = 16;
const ALGORITHM = 'aes-256-gcm';
const SEAL_INFO = Buffer.from('fedit/seal/v1');

/** The key for one upload, bound to its envelope digest and chunk count. */
export interface UploadKey {
  readonly key: Uint8Array;
  readonly envelopeDigest: Uint8Array;
  readonly chunkCount: number;
}

/** The participant's side: its own box key pair and the coordinator's box public key. */
export function participantUploadKey(
  participantBox: KeyPair,
  coordinatorBoxPublicKey: Uint8Array,
  envelopeDigest: Uint8Array,
  chunkCount: number,
): UploadKey {
  return deriveUploadKey(
    participantBox.secretKey,
    coordinatorBoxPublicKey,
    participantBox.publicKey,
    coordinatorBoxPublicKey,
    envelopeDigest,
    chunkCount,
  );
}

/** The coordinator's side: its own box key pair and the participant's enrolled box public key. */
export function coordinatorUploadKey(
  coordinatorBox: KeyPair,
  participantBoxPublicKey: Uint8Array,
  envelopeDigest: Uint8Array,
  chunkCount: number,
): UploadKey {
  return deriveUploadKey(
    coordinatorBox.secretKey,
    participantBoxPublicKey,
    participantBoxPublicKey,
    coordinatorBox.publicKey,
    envelopeDigest,
    chunkCount,
  );
}

function deriveUploadKey(
  ownSecretKey: Uint8Array,
  peerPublicKey: Uint8Array,
  participantPublicKey: Uint8Array,
  coordinatorPublicKey: Uint8Array,
  envelopeDigest: Uint8Array,
  chunkCount: number,
): UploadKey {
  assertBytes(ownSecretKey, BOX_SECRET_KEY_BYTES, 'own box secret key');
  assertBytes(peerPublicKey, BOX_PUBLIC_KEY_BYTES, 'peer box public key');
  assertBytes(participantPublicKey, BOX_PUBLIC_KEY_BYTES, 'participant box public key');
  assertBytes(coordinatorPublicKey, BOX_PUBLIC_KEY_BYTES, 'coordinator box public key');
  assertBytes(envelopeDigest, SHA256_BYTES, 'envelope digest');
  if (!Number.isSafeInteger(chunkCount) || chunkCount < 1) {
    throw new CryptoError('CRYPTO_CHUNK_INDEX', `chunk count must be a positive integer, got ${chunkCount}`, {
      field: 'chunkCount',
    });
  }
  const shared = nacl.scalarMult(ownSecretKey, peerPublicKey);
  // A low-order public key makes every secret key agree on zero: anyone could derive the key.
  if (shared.every((byte) => byte === 0)) {
    throw new CryptoError(
      'CRYPTO_KEY_AGREEMENT',
      'the peer box public key is a low-order point (X25519 gave the all-zero secret); refusing to seal or open with it',
      { field: 'peer box public key' },
    );
  }
  const info = Buffer.concat([SEAL_INFO, participantPublicKey, coordinatorPublicKey]);
  const key = new Uint8Array(hkdfSync('sha256', shared, envelopeDigest, info, 32));
  return { key, envelopeDigest: envelopeDigest.slice(), chunkCount };
}

/** Seals chunk `index` of the upload: returns ciphertext || tag, plaintext length + 16 bytes. */
export function sealChunk(key: UploadKey, index: number, plaintext: Uint8Array): Uint8Array {
  checkIndex(key, index);
  const cipher = createCipheriv(ALGORITHM, key.key, nonce(index), { authTagLength: SEAL_OVERHEAD_BYTES });
  cipher.setAAD(aad(key, index));
  // Not zero-filled: every byte is written below.
  const sealed = new Uint8Array(Buffer.allocUnsafeSlow(plaintext.byteLength + SEAL_OVERHEAD_BYTES).buffer);
  // GCM is a stream mode: update() returns exactly as many bytes as it is given, final() none.
  sealed.set(cipher.update(plaintext), 0);
  cipher.final();
  sealed.set(cipher.getAuthTag(), plaintext.byteLength);
  return sealed;
}

/**
 * Opens chunk `index` of the upload. Throws CRYPTO_OPEN_FAILED, and releases no plaintext, when
 * the chunk was altered, belongs to another upload or position, or was sealed under another key.
 */
export function openChunk(key: UploadKey, index: number, sealed: Uint8Array): Uint8Array {
  checkIndex(key, index);
  const where = `chunk ${index} of ${key.chunkCount} of upload ${toHex(key.envelopeDigest).slice(0, 16)}`;
  if (!(sealed instanceof Uint8Array) || sealed.byteLength < SEAL_OVERHEAD_BYTES) {
    throw new CryptoError(
      'CRYPTO_OPEN_FAILED',
      `${where} is ${sealed instanceof Uint8Array ? sealed.byteLength : 0} bytes, shorter than the ${SEAL_OVERHEAD_BYTES}-byte authentication tag`,
      { field: `chunk ${index}` },
    );
  }
  const bodyLength = sealed.byteLength - SEAL_OVERHEAD_BYTES;
  const decipher = createDecipheriv(ALGORITHM, key.key, nonce(index), { authTagLength: SEAL_OVERHEAD_BYTES });
  decipher.setAAD(aad(key, index));
  decipher.setAuthTag(sealed.subarray(bodyLength));
  const plaintext = decipher.update(sealed.subarray(0, bodyLength));
  try {
    decipher.final();
  } catch (cause) {
    plaintext.fill(0);
    throw new CryptoError(
      'CRYPTO_OPEN_FAILED',
      `${where} failed authentication: it was altered in transit or storage, belongs to another upload or position, or was sealed for another key`,
      { cause, field: `chunk ${index}` },
    );
  }
  return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
}

function checkIndex(key: UploadKey, index: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index >= key.chunkCount) {
    throw new CryptoError(
      'CRYPTO_CHUNK_INDEX',
      `chunk index ${index} is outside 0 .. ${key.chunkCount - 1} for an upload of ${key.chunkCount} chunks`,
      { field: 'index' },
    );
  }
}

function nonce(index: number): Uint8Array {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(index), true);
  return bytes;
}

function aad(key: UploadKey, index: number): Uint8Array {
  const bytes = new Uint8Array(SHA256_BYTES + 16);
  bytes.set(key.envelopeDigest, 0);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(SHA256_BYTES, BigInt(index), true);
  view.setBigUint64(SHA256_BYTES + 8, BigInt(key.chunkCount), true);
  return bytes;
}
