// The round log's Merkle tree (merkle.ts) against an independent statement of RFC 6962 §2.1: the
// recursive definitions of MTH, PATH and PROOF written out here over plain arrays, for every tree
// of up to 64 leaves and every pair of sizes; the Certificate Transparency test vectors; and every
// proof refused once one byte, the index or a size is changed.

import test from 'ava';
import { createHash } from 'node:crypto';
import {
  EMPTY_TREE_ROOT,
  MerkleTree,
  merkleLeafHash,
  verifyConsistency,
  verifyInclusion,
} from '@fedit/shared';

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// RFC 6962 §2.1 as written, recomputing everything from the leaves at every step.
const naiveK = (n: number) => 2 ** Math.ceil(Math.log2(n) - 1);
function naiveMth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256();
  if (d.length === 1) return sha256(Uint8Array.of(0), d[0]);
  const k = naiveK(d.length);
  return sha256(Uint8Array.of(1), naiveMth(d.slice(0, k)), naiveMth(d.slice(k)));
}
function naivePath(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length === 1) return [];
  const k = naiveK(d.length);
  return m < k
    ? [...naivePath(m, d.slice(0, k)), naiveMth(d.slice(k))]
    : [...naivePath(m - k, d.slice(k)), naiveMth(d.slice(0, k))];
}
function naiveSubproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [naiveMth(d)];
  const k = naiveK(d.length);
  return m <= k
    ? [...naiveSubproof(m, d.slice(0, k), b), naiveMth(d.slice(k))]
    : [...naiveSubproof(m - k, d.slice(k), false), naiveMth(d.slice(0, k))];
}

const leaves = Array.from({ length: 64 }, (_, i) => sha256(new TextEncoder().encode(`record ${i}`)));
const tree = MerkleTree.of(leaves);
const naiveRoots = Array.from({ length: 65 }, (_, n) => naiveMth(leaves.slice(0, n)));

function flipped(bytes: Uint8Array, at = 0): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[at % copy.length] ^= 1;
  return copy;
}

test('k is the largest power of two below n in the naive reference (sanity of the reference itself)', (t) => {
  t.deepEqual([2, 3, 4, 5, 8, 9, 64].map(naiveK), [1, 2, 2, 4, 4, 8, 32]);
});

test('the root of every prefix of up to 64 leaves is the RFC 6962 MTH, computed incrementally', (t) => {
  t.is(hex(tree.root(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.is(hex(EMPTY_TREE_ROOT), hex(naiveRoots[0]));
  const growing = new MerkleTree();
  for (let n = 0; n <= 64; n++) {
    t.is(hex(tree.root(n)), hex(naiveRoots[n]), `size ${n}`);
    t.is(hex(growing.root()), hex(naiveRoots[n]), `incremental, size ${n}`);
    if (n < 64) growing.append(leaves[n]);
  }
});

test('the Certificate Transparency test vectors (RFC 6962 reference leaves) give their published roots', (t) => {
  const ct = [
    '',
    '00',
    '10',
    '2021',
    '3031',
    '40414243',
    '5051525354555657',
    '606162636465666768696a6b6c6d6e6f',
  ];
  const roots = [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  ];
  const ctTree = MerkleTree.of(ct.map((h) => new Uint8Array(Buffer.from(h, 'hex'))));
  t.deepEqual(
    roots.map((_, i) => hex(ctTree.root(i + 1))),
    roots,
  );
});

test('every inclusion proof in every tree of up to 64 leaves is PATH(m, D[n]) and verifies', (t) => {
  for (let n = 1; n <= 64; n++) {
    for (let m = 0; m < n; m++) {
      const proof = tree.inclusionProof(m, n);
      t.deepEqual(proof.map(hex), naivePath(m, leaves.slice(0, n)).map(hex), `PATH(${m}, D[${n}])`);
      if (!verifyInclusion(m, n, merkleLeafHash(leaves[m]), proof, naiveRoots[n]))
        t.fail(`PATH(${m}, D[${n}])`);
    }
  }
  t.pass();
});

test('every consistency proof between sizes up to 64 is PROOF(m, D[n]) and verifies', (t) => {
  for (let n = 0; n <= 64; n++) {
    for (let m = 0; m <= n; m++) {
      const proof = tree.consistencyProof(m, n);
      const expected = m > 0 && m < n ? naiveSubproof(m, leaves.slice(0, n), true) : [];
      t.deepEqual(proof.map(hex), expected.map(hex), `PROOF(${m}, D[${n}])`);
      if (!verifyConsistency(m, n, naiveRoots[m], naiveRoots[n], proof)) t.fail(`PROOF(${m}, D[${n}])`);
    }
  }
  t.pass();
});

// A size alone is not tampered with: a proof for index 0 of 3 leaves also fits 4 leaves with the same
// shape, and the root it is checked against is of 3. The signed tree head binds size and root.
test('an inclusion proof is refused once anything changes: a byte of the proof, leaf or root, the index, its length', (t) => {
  for (let n = 1; n <= 64; n++) {
    for (let m = 0; m < n; m++) {
      const proof = tree.inclusionProof(m, n);
      const leaf = merkleLeafHash(leaves[m]);
      const bad: [string, boolean][] = [
        ['leaf', verifyInclusion(m, n, flipped(leaf, m), proof, naiveRoots[n])],
        ['root', verifyInclusion(m, n, leaf, proof, flipped(naiveRoots[n], n))],
        ['index', verifyInclusion((m + 1) % n === m ? m + 1 : (m + 1) % n, n, leaf, proof, naiveRoots[n])],
        ['a proof hash too many', verifyInclusion(m, n, leaf, [...proof, leaf], naiveRoots[n])],
        ...proof.map((_, i): [string, boolean] => [
          `proof[${i}]`,
          verifyInclusion(
            m,
            n,
            leaf,
            proof.map((p, j) => (j === i ? flipped(p, m + i) : p)),
            naiveRoots[n],
          ),
        ]),
        ...(proof.length > 0
          ? [
              ['a proof hash too few', verifyInclusion(m, n, leaf, proof.slice(1), naiveRoots[n])] as [
                string,
                boolean,
              ],
            ]
          : []),
      ];
      for (const [what, accepted] of bad)
        if (accepted) t.fail(`PATH(${m}, D[${n}]) accepted with a changed ${what}`);
    }
  }
  t.false(
    verifyInclusion(0, 0, merkleLeafHash(leaves[0]), [], EMPTY_TREE_ROOT),
    'no leaf is in the empty tree',
  );
  t.false(verifyInclusion(-1, 4, merkleLeafHash(leaves[0]), tree.inclusionProof(0, 4), naiveRoots[4]));
});

test('a consistency proof is refused once anything changes: a byte of either root or the proof, its length, the order of sizes', (t) => {
  for (let n = 2; n <= 64; n++) {
    for (let m = 1; m < n; m++) {
      const proof = tree.consistencyProof(m, n);
      const bad: [string, boolean][] = [
        ['first root', verifyConsistency(m, n, flipped(naiveRoots[m], m), naiveRoots[n], proof)],
        ['second root', verifyConsistency(m, n, naiveRoots[m], flipped(naiveRoots[n], n), proof)],
        ['no proof', verifyConsistency(m, n, naiveRoots[m], naiveRoots[n], [])],
        ['sizes swapped', verifyConsistency(n, m, naiveRoots[n], naiveRoots[m], proof)],
        [
          'a proof hash too many',
          verifyConsistency(m, n, naiveRoots[m], naiveRoots[n], [...proof, proof[0]]),
        ],
        ...proof.map((_, i): [string, boolean] => [
          `proof[${i}]`,
          verifyConsistency(
            m,
            n,
            naiveRoots[m],
            naiveRoots[n],
            proof.map((p, j) => (j === i ? flipped(p, i) : p)),
          ),
        ]),
      ];
      for (const [what, accepted] of bad)
        if (accepted) t.fail(`PROOF(${m}, D[${n}]) accepted with a changed ${what}`);
    }
  }
  t.false(verifyConsistency(3, 3, naiveRoots[3], naiveRoots[4], []), 'equal sizes need equal roots');
  t.false(verifyConsistency(0, 3, naiveRoots[1], naiveRoots[3], []), 'size 0 has the empty root');
  t.pass();
});

test('a tree of 100000 leaves is appended to in a few hashes each and proves in O(log² n)', (t) => {
  const big = new MerkleTree();
  const leaf = (i: number) => sha256(Uint8Array.of(i & 255, (i >> 8) & 255, i >> 16));
  const start = process.hrtime.bigint();
  for (let i = 0; i < 100_000; i++) big.append(leaf(i));
  const appendMs = Number(process.hrtime.bigint() - start) / 1e6;
  const root = big.root();
  const proof = big.inclusionProof(77_777);
  t.true(proof.length <= 17);
  t.true(verifyInclusion(77_777, 100_000, merkleLeafHash(leaf(77_777)), proof, root));
  const consistency = big.consistencyProof(65_537);
  t.true(verifyConsistency(65_537, 100_000, big.root(65_537), root, consistency));
  // Generous: ~200k SHA-256 calls; a quadratic tree would take minutes.
  t.true(appendMs < 20_000, `appending took ${appendMs} ms`);
});

test('sizes and indexes outside the tree are refused naming them', (t) => {
  const small = MerkleTree.of(leaves.slice(0, 5));
  t.throws(() => small.root(6), { instanceOf: RangeError, message: /size 6/ });
  t.throws(() => small.inclusionProof(5, 5), { instanceOf: RangeError, message: /index 5/ });
  t.throws(() => small.consistencyProof(4, 3), { instanceOf: RangeError, message: /first 4/ });
});
