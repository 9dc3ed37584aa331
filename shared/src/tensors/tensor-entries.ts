import type { Tensor } from './tensor.ts';
import { TensorError } from './tensor-error.ts';

/** A named set of tensors, as callers hold them: a Map, or a plain object keyed by name. */
export type TensorCollection = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

export interface SortedTensorEntry {
  name: string;
  /** The name's UTF-8 encoding, computed once because both sorting and writing need it. */
  nameBytes: Uint8Array;
  tensor: Tensor;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The tensors in ascending order of their names' UTF-8 bytes. Byte order (= code point order) is
 * what the reference safetensors implementation (Rust) and any other language sort by; JS's
 * default string sort compares UTF-16 code units and disagrees for names mixing characters above
 * U+FFFF with ones in U+E000–U+FFFF, so it would make hashes and file layouts language-dependent.
 */
export function sortedTensorEntries(tensors: TensorCollection): SortedTensorEntry[] {
  const pairs = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const entries = pairs.map(([name, tensor]) => ({ name, nameBytes: encodeName(name), tensor }));
  return entries.sort((a, b) => Buffer.compare(a.nameBytes, b.nameBytes));
}

function encodeName(name: string): Uint8Array {
  const bytes = encoder.encode(name);
  // TextEncoder silently turns a lone surrogate into U+FFFD, which would give two different
  // names the same bytes (and the same hash); refuse instead.
  if (decoder.decode(bytes) !== name) {
    throw new TensorError(
      'TENSOR_NAME',
      `tensor name ${JSON.stringify(name)} contains a lone UTF-16 surrogate and has no UTF-8 encoding`,
    );
  }
  return bytes;
}
