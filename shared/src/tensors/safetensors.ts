import { SafetensorsError } from './safetensors-error.ts';
import {
  decodeHeader,
  LENGTH_PREFIX_BYTES,
  MAX_HEADER_BYTES,
  readHeaderLength,
  type SafetensorsHeader,
} from './safetensors-header.ts';
import { assertValidTensor, type Tensor } from './tensor.ts';
import { sortedTensorEntries, type TensorCollection } from './tensor-entries.ts';

export interface ParsedSafetensors {
  metadata: Record<string, string>;
  /** Iterated in data-section order; each tensor's data is a view into the parsed bytes, not a copy. */
  tensors: Map<string, Tensor>;
}

/** Reads and validates only the header of a complete safetensors file held in memory. */
export function parseSafetensorsHeader(bytes: Uint8Array, source = '<buffer>'): SafetensorsHeader {
  const headerLength = readHeaderLength(bytes, bytes.byteLength, source);
  const dataStart = LENGTH_PREFIX_BYTES + headerLength;
  return decodeHeader(bytes.subarray(LENGTH_PREFIX_BYTES, dataStart), bytes.byteLength - dataStart, source);
}

/**
 * Parses a complete safetensors file held in memory. Zero-copy: tensor data are subarray views
 * into `bytes`, so they stay valid only as long as `bytes` is not modified.
 */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): ParsedSafetensors {
  const header = parseSafetensorsHeader(bytes, source);
  const tensors = new Map<string, Tensor>();
  for (const { name, dtype, shape, dataOffsets } of header.tensors.values()) {
    const data = bytes.subarray(header.dataStart + dataOffsets[0], header.dataStart + dataOffsets[1]);
    tensors.set(name, { dtype, shape, data });
  }
  return { metadata: header.metadata, tensors };
}

/** A file's bytes before they are written: the prefixed header, then each tensor's data in order. */
export interface SafetensorsLayout {
  /** The 8-byte length prefix followed by the space-padded JSON header. */
  head: Uint8Array;
  /** Tensor data in file order; concatenated they form the data section. */
  chunks: Uint8Array[];
  totalBytes: number;
}

const encoder = new TextEncoder();

/**
 * One tensor's entry in a canonical header. Built by hand rather than JSON.stringify(object)
 * because objects list integer-like keys ("0", "10") first, which would break name order in the
 * header. Exported so the size a schema implies (protocol/payload-size.ts) is computed from the
 * same bytes.
 */
export function canonicalHeaderEntry(
  name: string,
  dtype: string,
  shape: readonly number[],
  offset: number,
  end: number,
): string {
  return `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${offset},${end}]}`;
}

/**
 * Lays out a safetensors file the way the reference implementation does, except that tensors are
 * ordered by name alone (the reference first groups by dtype): `__metadata__` first, then each
 * tensor as {"dtype","shape","data_offsets"} in UTF-8 name order with contiguous spans, the JSON
 * padded with spaces to a multiple of 8 bytes. The same tensors and metadata always give the same
 * bytes, whatever order the caller's Map or object lists them in.
 */
export function layoutSafetensors(
  tensors: TensorCollection,
  metadata: Readonly<Record<string, string>> = {},
): SafetensorsLayout {
  const entries = sortedTensorEntries(tensors);
  const fields: string[] = [];
  const metadataJson = metadataToJson(metadata);
  if (metadataJson !== undefined) fields.push(`"__metadata__":${metadataJson}`);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const { name, tensor } of entries) {
    if (name === '__metadata__') {
      throw new SafetensorsError(
        'SAFETENSORS_HEADER',
        'a tensor cannot be named "__metadata__"; safetensors reserves that key for file metadata',
      );
    }
    assertValidTensor(tensor, name);
    const end = offset + tensor.data.byteLength;
    fields.push(canonicalHeaderEntry(name, tensor.dtype, tensor.shape, offset, end));
    chunks.push(tensor.data);
    offset = end;
  }
  const json = encoder.encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_TOO_LARGE',
      `the header would take ${headerLength} bytes, more than the ${MAX_HEADER_BYTES}-byte limit readers enforce`,
    );
  }
  const head = new Uint8Array(LENGTH_PREFIX_BYTES + headerLength).fill(0x20, LENGTH_PREFIX_BYTES);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, LENGTH_PREFIX_BYTES);
  return { head, chunks, totalBytes: head.byteLength + offset };
}

/** Serializes tensors (and optional string metadata) to the bytes of a safetensors file. */
export function serializeSafetensors(
  tensors: TensorCollection,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const { head, chunks, totalBytes } = layoutSafetensors(tensors, metadata);
  const out = new Uint8Array(totalBytes);
  out.set(head, 0);
  let position = head.byteLength;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.byteLength;
  }
  return out;
}

function metadataToJson(metadata: Readonly<Record<string, string>>): string | undefined {
  const keys = Object.keys(metadata);
  if (keys.length === 0) return undefined;
  const sorted = keys
    .map((key) => ({ key, bytes: encoder.encode(key) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  const fields = sorted.map(({ key }) => {
    const value: unknown = metadata[key];
    if (typeof value !== 'string') {
      throw new SafetensorsError(
        'SAFETENSORS_METADATA',
        `metadata entry ${JSON.stringify(key)} must be a string, got ${typeof value}`,
      );
    }
    return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
  });
  return `{${fields.join(',')}}`;
}
