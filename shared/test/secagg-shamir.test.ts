// Shamir sharing over GF(2^521 − 1) (secagg/shamir.ts) against a Python re-implementation run for
// these vectors (f(x) = Σ a_j x^j mod p for x = 1..6; Lagrange at 0 with pow(den, p − 2, p)), and
// properties over random secrets: every t-subset reconstructs, t − 1 shares give another value.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import {
  decodeShare,
  encodeShare,
  evaluateShares,
  interpolateAtZero,
  randomFieldElement,
  reconstructSecret,
  SHAMIR_PRIME,
  SHARE_BYTES,
  splitSecret,
  type Share,
} from '@fedit/shared';

const secretHex = createHash('sha256').update('secret').digest('hex');
const coefficients = [BigInt('0x' + secretHex), 3n ** 300n % SHAMIR_PRIME, 2n ** 520n + 12345n, 7n];
const pythonShares = [
  '0100000000000b39cfff485a5dbf4d6aae030b91bfb0ec6bba389cd8d7f85bba3985ed546b785f29f81d9e0f7164350c9524f655cc81d39d43b4dc1337e3d183f90c',
  '00000000000016739ffe90b4bb7e9ad55c0617237f61d8d7747139b1aff0b774730baef0c99d43364c57b04bdf66bf93d3c32ecaae3635d7887315c6864bade0b05b',
  '01000000000021ad6ffdd90f193de8400a0922b53f12c5432ea9d68a87e9132eac91708d27c22742a091c2884d694a1b1261673f8fea9811cd314f79d4b38a3dc870',
  '0000000000002ce73ffd216976fd35aab80c2e46fec3b1aee8e273635fe16ee8e617322985e70b4ef4cbd4c4bb6bd4a250ff9fb4719efa4c11ef892d231b669b4177',
  '01000000000038210ffc69c3d4bc8315660f39d8be749e1aa31b103c37d9caa31f9cf3c5e40bef5b4905e701296e5f298f9dd82953535c8656adc2e0718342f91b98',
  '000000000000435adffbb21e327bd0801412456a7e258a865d53ad150fd2265d5922b5624230d3679d3ff93d9770e9b0ce3c109e3507bec09b6bfc93bfeb1f5756ff',
];

function subsets<T>(items: T[], size: number): T[][] {
  if (size === 0) return [[]];
  if (items.length < size) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, size - 1).map((s) => [first, ...s]), ...subsets(rest, size)];
}

test('shares equal the Python evaluation, and encode to 68 bytes with x then 66-byte y', (t) => {
  const shares = evaluateShares(coefficients, 6);
  t.deepEqual(
    shares.map((s) => s.y.toString(16).padStart(132, '0')),
    pythonShares,
  );
  const encoded = encodeShare(shares[4]);
  t.is(encoded.length, SHARE_BYTES);
  t.is(Buffer.from(encoded).toString('hex'), '0005' + pythonShares[4]);
  t.deepEqual(decodeShare(encoded), shares[4]);
});

test('every 4 of the 6 vector shares reconstruct the secret; 3 give the Python Lagrange value', (t) => {
  const shares = evaluateShares(coefficients, 6);
  for (const subset of subsets(shares, 4)) {
    t.is(Buffer.from(reconstructSecret(subset, 4)).toString('hex'), secretHex);
  }
  const three = [shares[1], shares[2], shares[4]];
  t.is(
    interpolateAtZero(three, 2).toString(16).padStart(132, '0'),
    '000000000000000000000000000000000000000000000000000000000000000000002bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a32d',
  );
});

test('random secrets: any t shares reconstruct, t − 1 shares interpolate to another value', (t) => {
  for (const [threshold, count] of [
    [2, 2],
    [2, 5],
    [3, 5],
    [5, 7],
    [7, 7],
  ]) {
    const secret = new Uint8Array(randomBytes(32));
    const shares = splitSecret(secret, threshold, count);
    t.deepEqual(
      shares.map((s) => s.x),
      Array.from({ length: count }, (_, i) => i + 1),
    );
    for (const subset of subsets(shares, threshold))
      t.deepEqual(reconstructSecret(subset, threshold), secret);
    const value = BigInt('0x' + Buffer.from(secret).toString('hex'));
    for (const subset of subsets(shares, threshold - 1)) {
      if (subset.length < 2) continue;
      t.not(interpolateAtZero(subset, subset.length), value);
      t.throws(() => reconstructSecret(subset, subset.length), {
        message: /do not reconstruct a 32-byte secret/,
      });
    }
  }
});

test('two splits of one secret draw different coefficients', (t) => {
  const secret = new Uint8Array(32).fill(9);
  t.notDeepEqual(splitSecret(secret, 3, 4), splitSecret(secret, 3, 4));
});

test('a share replaced by a random field element is caught by the 2^256 range check', (t) => {
  const shares = splitSecret(new Uint8Array(randomBytes(32)), 3, 5);
  const bad: Share[] = [shares[0], shares[1], { x: shares[2].x, y: randomFieldElement() }];
  t.throws(() => reconstructSecret(bad, 3), { message: /do not reconstruct/ });
  // A chosen small offset is not caught: with x = 1, 2, 3 the Lagrange weight of the third share
  // is 1, so y + 1 moves the secret by exactly 1. Integrity of b_i needs a commitment (see docs).
  const shifted: Share[] = [shares[0], shares[1], { x: 3, y: (shares[2].y + 1n) % SHAMIR_PRIME }];
  const original = BigInt('0x' + Buffer.from(reconstructSecret(shares.slice(0, 3), 3)).toString('hex'));
  t.is(interpolateAtZero(shifted, 3), original + 1n);
});

test('refuses duplicate, out-of-range and too few shares, and thresholds outside 2..n', (t) => {
  const shares = splitSecret(new Uint8Array(32).fill(1), 3, 5);
  t.throws(() => reconstructSecret([shares[0], shares[1], shares[1]], 3), { message: /repeats x = 2/ });
  t.throws(() => reconstructSecret([shares[0], shares[1]], 3), { message: /at least threshold \(3\)/ });
  t.throws(() => reconstructSecret([shares[0], shares[1], { x: 0, y: 1n }], 3), {
    message: /shares\[2\]\.x/,
  });
  t.throws(() => reconstructSecret([shares[0], shares[1], { x: 3, y: SHAMIR_PRIME }], 3), {
    message: /shares\[2\]\.y/,
  });
  t.throws(() => splitSecret(new Uint8Array(32), 1, 5), {
    message: /threshold must be an integer from 2 to count/,
  });
  t.throws(() => splitSecret(new Uint8Array(32), 6, 5), { message: /threshold must be/ });
  t.throws(() => splitSecret(new Uint8Array(32), 2, 70000), { message: /count must be/ });
  t.throws(() => splitSecret(new Uint8Array(33), 2, 3), { message: /secret must be 32 bytes/ });
  t.throws(() => decodeShare(new Uint8Array(67)), { message: /share must be 68 bytes/ });
  t.throws(() => decodeShare(new Uint8Array(68)), { message: /share.x must be at least 1/ });
  const high = new Uint8Array(68).fill(0xff);
  t.throws(() => decodeShare(high), { message: /share.y must be below p/ });
  t.throws(() => encodeShare({ x: 1, y: -1n }), { message: /share.y must be/ });
});
