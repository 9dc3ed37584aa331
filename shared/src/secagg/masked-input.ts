// A secure round's masked input as it travels and is stored: one safetensors tensor named
// SECAGG_MASKED_TENSOR of dtype I32 and shape [L], whose bytes are the L uint32 words of the
// masked vector, little-endian (an I32 element and a uint32 word of the same bytes are the same
// residue mod 2^32, so no new dtype is needed). The participant's signed envelope announces exactly
// this one tensor, which is how an envelope says it carries a masked input rather than an update;
// the coordinator stores the canonical file of it in the blob store, and the audit reads the words
// back with maskedWordsOf. Nothing here ever holds an individual plaintext update.

import type { Tensor } from '../tensors/tensor.ts';
import { SecAggError } from './secagg-error.ts';

/** An envelope's tensor spec of a masked input (the protocol's TensorSpec with dtype I32). */
export interface MaskedInputSpec {
  name: string;
  shape: number[];
  dtype: 'I32';
}

/** The one tensor a masked input's payload holds. */
export const SECAGG_MASKED_TENSOR = 'secagg.masked';

/** The envelope tensor schema of a masked input of `length` words. */
export function maskedInputSchema(length: number): MaskedInputSpec[] {
  return [{ name: SECAGG_MASKED_TENSOR, shape: [length], dtype: 'I32' }];
}

/** Whether an envelope's tensor schema announces a masked input (of any length). */
export function isMaskedInputSchema(schema: readonly { name: string; dtype: string }[]): boolean {
  return schema.length === 1 && schema[0].name === SECAGG_MASKED_TENSOR && schema[0].dtype === 'I32';
}

/** The tensors of a masked input: its words as one I32 tensor (a copy of the bytes, little-endian). */
export function maskedInputTensors(words: Uint32Array): Map<string, Tensor> {
  const data = new Uint8Array(words.length * 4);
  const view = new DataView(data.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
  return new Map([[SECAGG_MASKED_TENSOR, { dtype: 'I32', shape: [words.length], data }]]);
}

/**
 * The words of a masked input's tensors; throws SecAggError naming what is wrong when they are not
 * exactly one I32 tensor SECAGG_MASKED_TENSOR of `length` words.
 */
export function maskedWordsOf(tensors: ReadonlyMap<string, Tensor>, length: number): Uint32Array {
  const t = tensors.get(SECAGG_MASKED_TENSOR);
  if (!t || tensors.size !== 1) {
    throw new SecAggError('SECAGG_INPUT', `a masked input holds exactly one tensor, ${SECAGG_MASKED_TENSOR}`);
  }
  if (
    t.dtype !== 'I32' ||
    t.shape.length !== 1 ||
    t.shape[0] !== length ||
    t.data.byteLength !== length * 4
  ) {
    throw new SecAggError(
      'SECAGG_INPUT',
      `${SECAGG_MASKED_TENSOR} must be I32 of shape [${length}] (the round's vector length), got ${t.dtype} [${t.shape.join(', ')}]`,
    );
  }
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const words = new Uint32Array(length);
  for (let i = 0; i < length; i++) words[i] = view.getUint32(i * 4, true);
  return words;
}
