// The mask PRG and pair seeds (secagg/prg.ts) against vectors computed independently: the AES-256-CTR
// words by `openssl enc -aes-256-ctr -K 000102..1f -iv 00..00 < /dev/zero` and by Python's
// `cryptography` (Cipher(AES(seed), CTR(b"\0"*16)), struct '<I'); the X25519 value is RFC 7748 §6.1's
// published shared secret; the pair seed is hashlib.sha256 over the header's layout
// (/tmp script: sha256(b"fedit/secagg/pair/v1" + struct.pack(">QII", 7, 4, 9) + shared)).

import test from 'ava';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { addMask, addModular, expandSeed, maskSign, pairSeed, prgStream, SecAggError } from '@fedit/shared';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());

test('PRG words match openssl aes-256-ctr with a zero IV, read little-endian', (t) => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  // openssl output begins f29000b6 2aa59ed0 ...; as little-endian words:
  t.deepEqual(
    [...expandSeed(seed, 8)],
    [3053490418, 3500099882, 1788539817, 2155294429, 2926992880, 3852450122, 832304806, 1026998856],
  );
});

test('PRG words match Python cryptography across block boundaries', (t) => {
  const w = expandSeed(sha('fedit test prg'), 70);
  t.deepEqual(
    [w[0], w[1], w[64], w[65], w[69]],
    [2933358255, 3203579689, 2444379865, 1800756199, 2223974210],
  );
});

test('a shorter expansion is a prefix of a longer one, and the stream reads the same words', (t) => {
  const seed = sha('prefix');
  const long = expandSeed(seed, 1000);
  t.deepEqual(expandSeed(seed, 37), long.subarray(0, 37));
  const next = prgStream(seed);
  t.deepEqual(
    Array.from({ length: 1000 }, () => next()),
    [...long],
  );
  t.notDeepEqual(expandSeed(sha('other'), 37), long.subarray(0, 37));
});

test('pair seeds: RFC 7748 §6.1 shared secret under the specified hash, the same from both ends', (t) => {
  const alicePrivate = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const bobPrivate = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const alicePublic = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.is(
    Buffer.from(nacl.scalarMult(alicePrivate, bobPublic)).toString('hex'),
    '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
  );
  const expected = '116ead72c832c46f2b4c2adae6874664a74343b1105b5bd6ba46aaf017c65ead';
  t.is(Buffer.from(pairSeed(alicePrivate, bobPublic, 9, 4, 7)).toString('hex'), expected);
  t.is(Buffer.from(pairSeed(bobPrivate, alicePublic, 4, 9, 7)).toString('hex'), expected);
  t.not(Buffer.from(pairSeed(alicePrivate, bobPublic, 9, 4, 8)).toString('hex'), expected);
  t.not(Buffer.from(pairSeed(alicePrivate, bobPublic, 9, 5, 7)).toString('hex'), expected);
});

test('pair masks with opposite signs cancel in the sum', (t) => {
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  const xa = Uint32Array.from({ length: 500 }, (_, i) => i * 7919);
  const xb = Uint32Array.from({ length: 500 }, (_, i) => 0xffffffff - i);
  const ya = Uint32Array.from(xa);
  const yb = Uint32Array.from(xb);
  addMask(ya, pairSeed(a.secretKey, b.publicKey, 1, 2, 3), maskSign(1, 2));
  addMask(yb, pairSeed(b.secretKey, a.publicKey, 2, 1, 3), maskSign(2, 1));
  t.notDeepEqual(ya, xa);
  const sum = Uint32Array.from(ya);
  addModular(sum, yb);
  const expected = Uint32Array.from(xa);
  addModular(expected, xb);
  t.deepEqual(sum, expected);
  t.is(maskSign(1, 2), 1);
  t.is(maskSign(2, 1), -1);
});

test('inputs are refused with the field named', (t) => {
  const key = nacl.box.keyPair();
  t.throws(() => expandSeed(new Uint8Array(31), 4), {
    instanceOf: SecAggError,
    message: /seed must be 32 bytes/,
  });
  t.throws(() => expandSeed(new Uint8Array(32), -1), { message: /length must be an integer/ });
  t.throws(() => expandSeed(new Uint8Array(32), 2 ** 28 + 1), { message: /length must be an integer/ });
  t.throws(() => pairSeed(key.secretKey, new Uint8Array(32), 1, 2, 0), { message: /low-order point/ });
  t.throws(() => pairSeed(key.secretKey, key.publicKey, 1, 1, 0), { message: /peerId must differ/ });
  t.throws(() => pairSeed(key.secretKey, key.publicKey, 1, 2, 1.5), { message: /round must be an integer/ });
  t.throws(() => pairSeed(key.secretKey, key.publicKey, 2 ** 32, 2, 0), { message: /selfId must be/ });
  t.throws(() => addModular(new Uint32Array(3), new Uint32Array(2)), { message: /addend has 2 words/ });
});
