// Mask expansion and pairwise seeds for secure aggregation (Bonawitz et al., CCS 2017, §4; the
// same construction as Flower's SecAgg+), fixed to the byte so an auditor re-derives every mask:
//
//   PRG(seed, L)     AES-256-CTR keyed with the 32-byte seed, initial counter block = 16 zero
//                    bytes, the counter incremented as one 128-bit big-endian integer per block
//                    (OpenSSL's and node:crypto's "aes-256-ctr"), encrypting 4·L zero bytes; the
//                    keystream is read as L little-endian uint32 words w[0..L-1]. Equivalently
//                    `openssl enc -aes-256-ctr -K <seed hex> -iv 00..00 < /dev/zero`.
//   pair seed s_ij   SHA-256(UTF-8("fedit/secagg/pair/v1") || u64be(round) || u32be(min(i,j)) ||
//                    u32be(max(i,j)) || X25519(sk_i, pk_j)), X25519 as RFC 7748 (tweetnacl's
//                    nacl.scalarMult, which clamps the scalar). Both ends compute the same value;
//                    the round and the ids bind it, so one key pair never yields one mask twice.
//   sign             participant i adds +PRG(s_ij) when i < j and subtracts it when i > j, all
//                    mod 2^32, so in a sum over both the pair's masks cancel exactly.
//
// Why AES-CTR: a mask is as long as the adapter (millions of words per round and neighbour); AES
// with hardware support expands it at memory speed, and the keystream is a PRF output under the
// seed, so a masked word reveals nothing about the word under it while the seed stays secret.

import { createCipheriv, createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { SecAggError } from './secagg-error.ts';

/** Bytes of a PRG seed, a pair seed and an X25519 key. */
export const SEED_BYTES = 32;
/** The longest stream one PRG call expands: 2^28 words (1 GiB), refused before allocation above. */
export const MAX_PRG_WORDS = 2 ** 28;

const PAIR_DOMAIN = new TextEncoder().encode('fedit/secagg/pair/v1');
const ZERO_IV = new Uint8Array(16);

/** Throws SecAggError naming `field` unless `value` is a Uint8Array of exactly `bytes` bytes. */
export function checkBytes(value: unknown, bytes: number, field: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== bytes) {
    throw new SecAggError('SECAGG_INPUT', `${field} must be ${bytes} bytes`);
  }
}

/** Throws SecAggError naming `field` unless `value` is an integer in [0, max]. */
export function checkInteger(value: unknown, max: number, field: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new SecAggError('SECAGG_INPUT', `${field} must be an integer from 0 to ${max}`);
  }
}

/** PRG(seed, length): `length` uint32 words of AES-256-CTR keystream, as the header specifies. */
export function expandSeed(seed: Uint8Array, length: number): Uint32Array {
  checkBytes(seed, SEED_BYTES, 'seed');
  checkInteger(length, MAX_PRG_WORDS, 'length');
  const cipher = createCipheriv('aes-256-ctr', seed, ZERO_IV);
  const stream = cipher.update(new Uint8Array(length * 4));
  cipher.final();
  const words = new Uint32Array(length);
  // Read explicitly little-endian rather than through a Uint32Array view of the bytes, so the
  // result does not depend on the host's byte order (and the Buffer's offset needs no alignment).
  for (let i = 0; i < length; i++) words[i] = stream.readUInt32LE(i * 4);
  return words;
}

/**
 * The words of PRG(seed, ·) one at a time, for draws of unknown length (the graph's shuffle):
 * the same keystream expandSeed returns, read in 64-word blocks.
 */
export function prgStream(seed: Uint8Array): () => number {
  checkBytes(seed, SEED_BYTES, 'seed');
  const cipher = createCipheriv('aes-256-ctr', seed, ZERO_IV);
  const zeros = new Uint8Array(256);
  let block = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at === block.length) {
      block = cipher.update(zeros);
      at = 0;
    }
    const word = block.readUInt32LE(at);
    at += 4;
    return word;
  };
}

/** s_ij for participants `selfId` and `peerId` in `round`, from self's secret and peer's public key. */
export function pairSeed(
  selfSecretKey: Uint8Array,
  peerPublicKey: Uint8Array,
  selfId: number,
  peerId: number,
  round: number,
): Uint8Array {
  checkBytes(selfSecretKey, SEED_BYTES, 'selfSecretKey');
  checkBytes(peerPublicKey, SEED_BYTES, 'peerPublicKey');
  checkInteger(selfId, 0xffffffff, 'selfId');
  checkInteger(peerId, 0xffffffff, 'peerId');
  checkInteger(round, Number.MAX_SAFE_INTEGER, 'round');
  if (selfId === peerId) throw new SecAggError('SECAGG_INPUT', 'peerId must differ from selfId');
  const shared = nacl.scalarMult(selfSecretKey, peerPublicKey);
  // A low-order public key makes the shared secret all zeros whatever the secret key: the mask
  // would be public, so such a key is refused rather than silently used.
  if (shared.every((b) => b === 0)) {
    throw new SecAggError('SECAGG_INPUT', 'peerPublicKey is a low-order point (shared secret is zero)');
  }
  const header = new DataView(new ArrayBuffer(16));
  header.setBigUint64(0, BigInt(round));
  header.setUint32(8, Math.min(selfId, peerId));
  header.setUint32(12, Math.max(selfId, peerId));
  const h = createHash('sha256').update(PAIR_DOMAIN).update(new Uint8Array(header.buffer)).update(shared);
  return new Uint8Array(h.digest());
}

/** +1 when `selfId` < `peerId` (self adds the pair mask), −1 otherwise (self subtracts it). */
export function maskSign(selfId: number, peerId: number): 1 | -1 {
  return selfId < peerId ? 1 : -1;
}

/** target[i] = target[i] + sign·PRG(seed)[i] mod 2^32, in place. */
export function addMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): void {
  const mask = expandSeed(seed, target.length);
  // Uint32Array stores ToUint32 of the value, which is exactly the reduction mod 2^32: the sum
  // or difference of two words stays below 2^33 in magnitude, far inside binary64's exact range.
  if (sign === 1) for (let i = 0; i < target.length; i++) target[i] = target[i] + mask[i];
  else for (let i = 0; i < target.length; i++) target[i] = target[i] - mask[i];
}

/** target[i] = target[i] + addend[i] mod 2^32, in place (the coordinator's running sum). */
export function addModular(target: Uint32Array, addend: Uint32Array): void {
  if (addend.length !== target.length) {
    throw new SecAggError('SECAGG_INPUT', `addend has ${addend.length} words, expected ${target.length}`);
  }
  for (let i = 0; i < target.length; i++) target[i] = target[i] + addend[i];
}
