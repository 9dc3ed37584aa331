// Content hash of a set of named tensors: what the coordinator records per round and what two
// participants compare to know they hold the same adapter, whatever file carried it.
//
// Canonical encoding (version 1), fed to SHA-256 piece by piece, never materialised as a whole:
//
//   "fedit-tensors-v1"                16 ASCII bytes, domain separation from every other hash
//   count                             u64 LE, number of tensors
//   then per tensor, in ascending order of the names' UTF-8 bytes:
//     name length, name               u64 LE byte length, then the UTF-8 bytes
//     dtype length, dtype             u64 LE byte length, then the ASCII dtype name ("F32", "BF16")
//     rank, dims                      u64 LE number of dimensions, then each dimension as u64 LE
//     data length, data               u64 LE byte length, then the raw little-endian tensor bytes
//
// Every variable-length field carries its length, so no two different tensor sets encode to the
// same bytes. Metadata, header key order, padding and data offsets of the file the tensors came
// from are deliberately not part of the hash: the same tensors hash the same from any file.
// The result is "sha256:" + 64 lowercase hex digits; the prefix names the algorithm so it can
// change later without old and new hashes being mistaken for each other.
import { createHash, type Hash } from 'node:crypto';
import { assertValidTensor } from './tensor.ts';
import { sortedTensorEntries, type TensorCollection } from './tensor-entries.ts';

const encoder = new TextEncoder();
const DOMAIN_TAG = encoder.encode('fedit-tensors-v1');

/** The canonical content hash of `tensors`, as `sha256:<64 hex digits>`. */
export function hashTensors(tensors: TensorCollection): string {
  const entries = sortedTensorEntries(tensors);
  const hash = createHash('sha256');
  hash.update(DOMAIN_TAG);
  updateU64(hash, entries.length);
  for (const { name, nameBytes, tensor } of entries) {
    // A tensor whose bytes disagree with its shape is a bug upstream; hashing it would give the
    // bug a name that looks legitimate.
    assertValidTensor(tensor, name);
    updateBytes(hash, nameBytes);
    updateBytes(hash, encoder.encode(tensor.dtype));
    updateU64(hash, tensor.shape.length);
    for (const dim of tensor.shape) updateU64(hash, dim);
    updateBytes(hash, tensor.data);
  }
  return `sha256:${hash.digest('hex')}`;
}

function updateBytes(hash: Hash, bytes: Uint8Array): void {
  updateU64(hash, bytes.byteLength);
  hash.update(bytes);
}

function updateU64(hash: Hash, value: number): void {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
  hash.update(bytes);
}
