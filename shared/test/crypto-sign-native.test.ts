// verifyDigest runs on node:crypto's native Ed25519; these tests hold it to tweetnacl's verdicts
// (with S >= L refused, as before) on random, altered, malleated, small-order and non-canonical
// inputs. Any input on which the two disagree fails the test, naming it.
import { randomBytes } from 'node:crypto';
import test from 'ava';
import nacl from 'tweetnacl';
import { DOMAINS, sha256, signDigest, toHex, verifyDigest } from '@fedit/shared';

const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;
const FIELD_PRIME = 2n ** 255n - 19n;
const DOMAIN = DOMAINS.secaggAdvert;
// tweetnacl's verify costs milliseconds: the default run is sized to stay fast; FEDIT_SIGN_SCALE=8
// (or more) runs the thorough comparison (1000 random signatures, 4000 verdicts; every
// small-order case 8 times).
const SCALE = Math.max(1, Number(process.env.FEDIT_SIGN_SCALE ?? 1) || 1);

/** What verifyDigest accepted before: S < L, then tweetnacl's verify of the domain-tagged digest. */
function reference(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean {
  if (littleEndian(signature.subarray(32)) >= GROUP_ORDER) return false;
  const tag = Buffer.from(DOMAIN, 'ascii');
  return nacl.sign.detached.verify(sha256(Uint8Array.of(tag.byteLength), tag, digest), signature, publicKey);
}

function littleEndian(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

function encode(v: bigint, signBit = false): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  if (signBit) out[31] |= 0x80;
  return out;
}

/** Runs both verdicts; returns the native one, recording any disagreement. */
function compare(
  disagreements: string[],
  publicKey: Uint8Array,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  const native = verifyDigest(publicKey, DOMAIN, digest, signature);
  if (native !== reference(publicKey, digest, signature))
    disagreements.push(`key ${toHex(publicKey)} digest ${toHex(digest)} signature ${toHex(signature)}`);
  return native;
}

test('random signatures, altered ones, wrong keys and wrong digests: native and tweetnacl agree', (t) => {
  const disagreements: string[] = [];
  let accepted = 0;
  const N = 125 * SCALE;
  for (let i = 0; i < N; i++) {
    const keys = nacl.sign.keyPair.fromSeed(randomBytes(32));
    const digest = randomBytes(32);
    const signature = signDigest(keys.secretKey, DOMAIN, digest);
    if (compare(disagreements, keys.publicKey, digest, signature)) accepted++;
    const altered = signature.slice();
    altered[i % 64] ^= 1 << (i % 8);
    compare(disagreements, keys.publicKey, digest, altered);
    const wrongKey = keys.publicKey.slice();
    wrongKey[(i * 7) % 32] ^= 1 << (i % 8);
    compare(disagreements, wrongKey, digest, signature);
    compare(disagreements, keys.publicKey, randomBytes(32), signature);
  }
  t.deepEqual(disagreements, []);
  t.is(accepted, N, 'every honest signature verifies');
});

test('malleations: S + kL, R with its sign bit flipped, every byte altered: refused by both', (t) => {
  const disagreements: string[] = [];
  const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
  const digest = sha256(new TextEncoder().encode('malleation'));
  const signature = signDigest(keys.secretKey, DOMAIN, digest);
  const s = littleEndian(signature.subarray(32));
  const forged: Uint8Array[] = [];
  for (let k = 1n; s + k * GROUP_ORDER < 2n ** 256n; k++) {
    const f = signature.slice();
    f.set(encode(s + k * GROUP_ORDER), 32);
    forged.push(f);
  }
  t.true(forged.length >= 1);
  const flipped = signature.slice();
  flipped[31] ^= 0x80;
  forged.push(flipped);
  for (let i = 0; i < 64; i++)
    for (const bit of [0x01, 0x80]) {
      const f = signature.slice();
      f[i] ^= bit;
      forged.push(f);
    }
  for (const f of forged) t.false(compare(disagreements, keys.publicKey, digest, f), toHex(f));
  t.deepEqual(disagreements, []);
  t.true(compare(disagreements, keys.publicKey, digest, signature));
});

// Small-order points (the identity, (0, -1), the order-4 and order-8 points) in their canonical
// encodings and non-canonical ones (y + p, the sign bit set on x = 0), and y >= p values.
const ODD_POINTS = [
  encode(1n),
  encode(1n, true),
  encode(FIELD_PRIME + 1n),
  encode(FIELD_PRIME - 1n),
  encode(FIELD_PRIME - 1n, true),
  encode(0n),
  encode(0n, true),
  encode(FIELD_PRIME),
  encode(2n ** 255n - 1n),
  Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex'),
  Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'hex'),
  Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 'hex'),
  Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', 'hex'),
];

test('small-order and non-canonical keys and R, with S = 0, 1, L - 1: native and tweetnacl agree', (t) => {
  const disagreements: string[] = [];
  let accepted = 0;
  const scalars = [0n, 1n, GROUP_ORDER - 1n];
  for (let m = 0; m < SCALE; m++) {
    const digest = sha256(Uint8Array.of(m));
    for (const key of ODD_POINTS)
      for (const r of ODD_POINTS)
        for (const s of scalars) {
          const signature = new Uint8Array(64);
          signature.set(r, 0);
          signature.set(encode(s), 32);
          if (compare(disagreements, key, digest, signature)) accepted++;
        }
  }
  t.deepEqual(disagreements, []);
  // Both accept some of these (a small-order key makes [k]A small): the comparison saw acceptances.
  t.true(accepted > 0);
});

test('random 32-byte keys (about half are no curve point) and an honest signature of another key: agree', (t) => {
  const disagreements: string[] = [];
  const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
  const digest = sha256(new TextEncoder().encode('random keys'));
  const signature = signDigest(keys.secretKey, DOMAIN, digest);
  for (let i = 0; i < 100 * SCALE; i++) t.false(compare(disagreements, randomBytes(32), digest, signature));
  t.deepEqual(disagreements, []);
});

test('signDigest (native) is byte-identical to tweetnacl, also after the key array is rewritten', (t) => {
  const tag = Buffer.from(DOMAIN, 'ascii');
  for (let i = 0; i < 40 * SCALE; i++) {
    const keys = nacl.sign.keyPair.fromSeed(randomBytes(32));
    const digest = randomBytes(32);
    const message = sha256(Uint8Array.of(tag.byteLength), tag, digest);
    t.deepEqual(signDigest(keys.secretKey, DOMAIN, digest), nacl.sign.detached(message, keys.secretKey));
    // The same array with another key in it: the cache must not sign with the old one.
    keys.secretKey.set(nacl.sign.keyPair.fromSeed(randomBytes(32)).secretKey);
    t.deepEqual(signDigest(keys.secretKey, DOMAIN, digest), nacl.sign.detached(message, keys.secretKey));
  }
  // A secret key whose second half is not its seed's public key: still tweetnacl's bytes.
  const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
  const inconsistent = keys.secretKey.slice();
  inconsistent.set(nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8)).publicKey, 32);
  const digest = sha256(Uint8Array.of(1));
  const message = sha256(Uint8Array.of(tag.byteLength), tag, digest);
  t.deepEqual(signDigest(inconsistent, DOMAIN, digest), nacl.sign.detached(message, inconsistent));
});
