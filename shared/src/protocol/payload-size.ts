// The exact size of the update an envelope announces. An update's payload is the canonical
// safetensors file of its tensors (admission-payload.ts refuses any other layout), and the
// envelope's tensorSchema lists those tensors (names, dtypes, shapes): so the schema fixes the
// payload's length to the byte, and an update:begin whose payloadBytes differs can be refused
// before a single chunk is received (a 64 MiB garbage upload was assembled in memory first).
//
// The arithmetic, as layoutSafetensors lays the file out with no metadata:
//   data   = sum over tensors of dtypeByteSize(dtype) * prod(shape)
//   json   = "{" + join(",", entry(name, dtype, shape, offset, end) for each tensor in order) + "}"
//            (canonicalHeaderEntry; offsets are the running sum of the data lengths)
//   header = ceil(utf8Length(json) / 8) * 8            (padded with spaces)
//   bytes  = 8 (the header length, u64 little-endian) + header + data

import { canonicalHeaderEntry } from '../tensors/safetensors.ts';
import { LENGTH_PREFIX_BYTES } from '../tensors/safetensors-header.ts';
import { tensorByteLength } from '../tensors/tensor.ts';
import type { DType } from '../tensors/dtype.ts';

/** A tensor as an envelope announces it. */
export interface AnnouncedTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/** The byte length of the canonical safetensors file of `schema` (in its order, no metadata). */
export function canonicalPayloadBytes(schema: readonly AnnouncedTensor[]): number {
  let offset = 0;
  const entries = schema.map(({ name, dtype, shape }) => {
    const start = offset;
    offset += tensorByteLength(dtype, shape);
    return canonicalHeaderEntry(name, dtype, shape, start, offset);
  });
  const json = new TextEncoder().encode(`{${entries.join(',')}}`).byteLength;
  return LENGTH_PREFIX_BYTES + Math.ceil(json / 8) * 8 + offset;
}
