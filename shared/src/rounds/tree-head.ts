// Signed tree heads: the coordinator's signed statement "the first `size` records of federation F's
// round log form the Merkle tree (merkle.ts) with root R", which participants and auditors keep.
// Two heads of one federation must be consistent (the smaller tree a prefix of the larger); two
// that are not are a signed proof that the coordinator showed different logs. A head an auditor
// pins also catches a log whose tail was removed (audit.ts, --head).
//
// A head is a JSON object with exactly these fields:
//
//   federation  the federation's id
//   size        the number of records the tree covers (0, 1, 2, ...)
//   root        "sha256:" + hex of MTH over the first `size` records' hash bytes (merkle.ts)
//   time        when the coordinator signed it, as records write times
//   signature   hex of the coordinator's Ed25519 signature of D under 'fedit/tree-head/v1'
//               (crypto/sign.ts), D = SHA-256("fedit/tree-head/v1" || C), C the canonical
//               encoding (canonical.ts) of {federation, root, size, time}
//
// In Python: D = sha256(b"fedit/tree-head/v1" + json.dumps({"federation": f, "root": r, "size": n,
// "time": t}, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()).digest().

import { createHash } from 'node:crypto';
import { DOMAINS, signDigest, verifyDigest } from '../crypto/sign.ts';
import { SchemaError, object, predicate } from '../schema/schema.ts';
import { canonicalBytes } from './canonical.ts';
import { MerkleTree, merkleLeafHash } from './merkle.ts';
import type { RoundRecord } from './record.ts';
import { isRecordHash, isRecordTime } from './record-shape.ts';
import { RoundLogError } from './round-error.ts';

export interface UnsignedTreeHead {
  federation: string;
  size: number;
  root: string;
  time: string;
}

export type SignedTreeHead = UnsignedTreeHead & { signature: string };

const TREE_HEAD_DOMAIN = new TextEncoder().encode(DOMAINS.treeHead);

/** D = SHA-256("fedit/tree-head/v1" || canonical bytes of {federation, root, size, time}). */
export function treeHeadDigest(head: UnsignedTreeHead): Uint8Array {
  const { federation, size, root, time } = head;
  const bytes = canonicalBytes({ federation, root, size, time });
  return new Uint8Array(createHash('sha256').update(TREE_HEAD_DOMAIN).update(bytes).digest());
}

/** Signs a head with the coordinator's tweetnacl secret key (64 bytes). */
export function signTreeHead(head: UnsignedTreeHead, coordinatorSecretKey: Uint8Array): SignedTreeHead {
  const signature = signDigest(coordinatorSecretKey, DOMAINS.treeHead, treeHeadDigest(head));
  const { federation, size, root, time } = head;
  return { federation, size, root, time, signature: Buffer.from(signature).toString('hex') };
}

/** Whether the head's signature is the coordinator's (Ed25519 public key, 32 bytes). */
export function verifyTreeHeadSignature(head: SignedTreeHead, coordinatorPublicKey: Uint8Array): boolean {
  if (!/^[0-9a-f]{128}$/.test(head.signature)) return false;
  const signature = new Uint8Array(Buffer.from(head.signature, 'hex'));
  return verifyDigest(coordinatorPublicKey, DOMAINS.treeHead, treeHeadDigest(head), signature);
}

const treeHeadShape = object(
  {
    federation: predicate<string>((v) => typeof v === 'string' && v.length > 0, 'is not a non-empty string'),
    size: predicate<number>(
      (v) => Number.isSafeInteger(v) && (v as number) >= 0,
      'is not a non-negative integer',
    ),
    root: predicate<string>(isRecordHash, 'is not a hash "sha256:" + 64 lowercase hex digits'),
    time: predicate<string>(isRecordTime, 'is not a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"'),
    signature: predicate<string>(
      (v) => typeof v === 'string' && /^[0-9a-f]{128}$/.test(v),
      'is not 128 lowercase hex digits (an Ed25519 signature)',
    ),
  },
  { noun: 'tree head' },
);

/** Checks the shape of a signed tree head (every field named); the signature is checked apart. */
export function parseTreeHead(value: unknown, label = 'head'): SignedTreeHead {
  try {
    return treeHeadShape.parse(value, label);
  } catch (error) {
    if (error instanceof SchemaError) throw new RoundLogError('ROUND_TREE_HEAD', error.message);
    throw error;
  }
}

/** The Merkle leaf of a record: its hash bytes D (record.ts). */
export function recordLeaf(record: Pick<RoundRecord, 'hash'>): Uint8Array {
  return new Uint8Array(Buffer.from(record.hash.slice('sha256:'.length), 'hex'));
}

/** The leaf hash of a record, as inclusion proofs start from. */
export function recordLeafHash(record: Pick<RoundRecord, 'hash'>): Uint8Array {
  return merkleLeafHash(recordLeaf(record));
}

/** The Merkle tree over records, in log order. */
export function recordTree(records: Iterable<Pick<RoundRecord, 'hash'>>): MerkleTree {
  const tree = new MerkleTree();
  for (const record of records) tree.append(recordLeaf(record));
  return tree;
}

/** A root as heads write it. */
export function rootString(root: Uint8Array): string {
  return `sha256:${Buffer.from(root).toString('hex')}`;
}

/** A root as heads write it, back to its bytes. */
export function rootBytes(root: string): Uint8Array {
  return new Uint8Array(Buffer.from(root.slice('sha256:'.length), 'hex'));
}
