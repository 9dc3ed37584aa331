// The round log as a Merkle tree (RFC 6962 §2.1, restated in RFC 9162 §2.1), so that anyone
// holding a signed tree head (tree-head.ts) can check that a record is in the log (an inclusion
// proof) and that a later log extends the one they saw (a consistency proof), with a handful of
// hashes rather than the whole folder.
//
// Exact arithmetic, SHA-256 throughout, every value 32 bytes:
//
//   leaf i        the i-th record's hash bytes D (record.ts: the 32 bytes behind "sha256:")
//   leaf hash     SHA-256(0x00 || leaf)
//   node hash     SHA-256(0x01 || left || right)
//   MTH({})       SHA-256() of no bytes (e3b0c442...b855)
//   MTH({d0})     leaf hash of d0
//   MTH(D[n])     n > 1: k = the largest power of two < n;
//                 node hash of MTH(D[0:k]) and MTH(D[k:n])
//   PATH(m, D[n]) the inclusion proof of leaf m (RFC 6962 §2.1.1): for n = 1 empty; else
//                 m < k: PATH(m, D[0:k]) then MTH(D[k:n]); m >= k: PATH(m - k, D[k:n]) then MTH(D[0:k])
//   PROOF(m, D[n]) the consistency proof of size m in size n, 0 < m < n (RFC 6962 §2.1.2):
//                 SUBPROOF(m, D[n], true), where SUBPROOF(m, D[m], true) is empty,
//                 SUBPROOF(m, D[m], false) is {MTH(D[m])}, and for m < n: m <= k:
//                 SUBPROOF(m, D[0:k], b) then MTH(D[k:n]); m > k: SUBPROOF(m - k, D[k:n], false)
//                 then MTH(D[0:k]). PROOF(m, D[m]) is empty.
//
// Proofs list hashes from the leaves up, as the RFCs do. Verification follows RFC 9162 §2.1.3.2
// (inclusion) and §2.1.4.2 (consistency) step by step; it never needs the tree itself.
//
// MerkleTree keeps the hash of every complete, aligned subtree (level j holds the subtrees of 2^j
// leaves), so an append costs at most log2(n) + 1 hashes, a root log2(n), and a proof O(log² n),
// for the 10^5 records a long federation writes.

import { createHash } from 'node:crypto';

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** SHA-256(0x00 || leaf). */
export function merkleLeafHash(leaf: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(leaf).digest());
}

/** SHA-256(0x01 || left || right). */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest());
}

/** MTH of the empty tree: SHA-256 of no bytes. */
export const EMPTY_TREE_ROOT: Uint8Array = new Uint8Array(createHash('sha256').digest());

/** The largest power of two strictly below n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * A Merkle tree over leaf hashes, appended to one leaf at a time. Sizes up to 2^31 leaves (the
 * bit arithmetic below is 32-bit; a log holds far fewer records).
 */
export class MerkleTree {
  /** levels[j][i]: the hash of the complete subtree of leaves [i·2^j, (i+1)·2^j). */
  readonly #levels: Uint8Array[][] = [[]];

  /** The tree over `leaves` (raw leaves, e.g. record hash bytes). */
  static of(leaves: Iterable<Uint8Array>): MerkleTree {
    const tree = new MerkleTree();
    for (const leaf of leaves) tree.append(leaf);
    return tree;
  }

  get size(): number {
    return this.#levels[0].length;
  }

  /** Appends a raw leaf (it is hashed with the 0x00 prefix here). */
  append(leaf: Uint8Array): void {
    this.appendLeafHash(merkleLeafHash(leaf));
  }

  /** Appends a leaf already hashed with merkleLeafHash. */
  appendLeafHash(leafHash: Uint8Array): void {
    let hash = leafHash;
    for (let level = 0; ; level++) {
      this.#levels[level] ??= [];
      const row = this.#levels[level];
      row.push(hash);
      if (row.length % 2 === 1) return;
      hash = merkleNodeHash(row[row.length - 2], row[row.length - 1]);
    }
  }

  /** MTH of the first `size` leaves (default: all). */
  root(size = this.size): Uint8Array {
    this.#checkSize(size, 'size');
    return size === 0 ? EMPTY_TREE_ROOT : this.#rangeHash(0, size);
  }

  /** PATH(index, D[size]): the inclusion proof of leaf `index` in the tree of the first `size` leaves. */
  inclusionProof(index: number, size = this.size): Uint8Array[] {
    this.#checkSize(size, 'size');
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new RangeError(`index ${index} is not a leaf of a tree of size ${size}`);
    }
    const path: Uint8Array[] = [];
    this.#path(index, 0, size, path);
    return path;
  }

  /** PROOF(first, D[second]): the consistency proof between the trees of sizes first <= second. */
  consistencyProof(first: number, second = this.size): Uint8Array[] {
    this.#checkSize(second, 'second');
    if (!Number.isSafeInteger(first) || first < 0 || first > second) {
      throw new RangeError(`first ${first} must be between 0 and second (${second})`);
    }
    const proof: Uint8Array[] = [];
    if (first > 0 && first < second) this.#subproof(first, 0, second, true, proof);
    return proof;
  }

  #checkSize(size: number, name: string): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new RangeError(`${name} ${size} is not a size of this tree (0 to ${this.size})`);
    }
  }

  /** MTH(D[start:end]) for the ranges the RFC recursion visits (start aligned to the split). */
  #rangeHash(start: number, end: number): Uint8Array {
    const n = end - start;
    if (isPowerOfTwo(n) && start % n === 0) return this.#levels[Math.log2(n)][start / n];
    const k = splitPoint(n);
    return merkleNodeHash(this.#rangeHash(start, start + k), this.#rangeHash(start + k, end));
  }

  #path(index: number, start: number, end: number, out: Uint8Array[]): void {
    const n = end - start;
    if (n === 1) return;
    const k = splitPoint(n);
    if (index < start + k) {
      this.#path(index, start, start + k, out);
      out.push(this.#rangeHash(start + k, end));
    } else {
      this.#path(index, start + k, end, out);
      out.push(this.#rangeHash(start, start + k));
    }
  }

  #subproof(m: number, start: number, end: number, whole: boolean, out: Uint8Array[]): void {
    const n = end - start;
    if (m === n) {
      if (!whole) out.push(this.#rangeHash(start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      this.#subproof(m, start, start + k, whole, out);
      out.push(this.#rangeHash(start + k, end));
    } else {
      this.#subproof(m - k, start + k, end, false, out);
      out.push(this.#rangeHash(start, start + k));
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/**
 * RFC 9162 §2.1.3.2: true when `proof` shows the leaf with hash `leafHash` at `index` in the tree
 * of `size` leaves whose root is `root`. Never throws on a bad proof; it is simply not valid.
 */
export function verifyInclusion(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (size > 2 ** 31) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = merkleNodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn >>>= 1;
        sn >>>= 1;
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 && equalBytes(r, root);
}

/**
 * RFC 9162 §2.1.4.2: true when `proof` shows the tree of `first` leaves with root `firstRoot` is
 * a prefix of the tree of `second` leaves with root `secondRoot`. Equal sizes need an empty proof
 * and equal roots; the empty tree (first = 0) is a prefix of every tree, with an empty proof.
 */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second)
    return false;
  if (second > 2 ** 31) return false;
  if (first === second) return proof.length === 0 && equalBytes(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0 && equalBytes(firstRoot, EMPTY_TREE_ROOT);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn >>>= 1;
    sn >>>= 1;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = merkleNodeHash(c, fr);
      sr = merkleNodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn >>>= 1;
        sn >>>= 1;
      }
    } else {
      sr = merkleNodeHash(sr, c);
    }
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 && equalBytes(fr, firstRoot) && equalBytes(sr, secondRoot);
}
