import { DTYPES, isDType, type DType } from './dtype.ts';
import { SafetensorsError } from './safetensors-error.ts';
import { tensorByteLength } from './tensor.ts';

/** One tensor's entry in a safetensors header. Offsets are relative to the data section. */
export interface SafetensorsTensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  dataOffsets: [begin: number, end: number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** Keyed by name, iterated in data-section order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  /** Absolute byte offset of the data section: 8 + the header length. */
  dataStart: number;
  /** Bytes in the data section; the tensors cover exactly this many. */
  dataByteLength: number;
}

/** The reference implementation's cap; a larger length is a corrupt or hostile file, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

export const LENGTH_PREFIX_BYTES = 8;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads the u64 little-endian header length from the first 8 bytes and checks it against the
 * cap and the total size. `totalBytes` is the size of the whole file, which may be more than the
 * bytes at hand when only the start of a file was read.
 */
export function readHeaderLength(prefix: Uint8Array, totalBytes: number, source: string): number {
  if (totalBytes < LENGTH_PREFIX_BYTES) {
    throw new SafetensorsError(
      'SAFETENSORS_TRUNCATED',
      `${source}: file has ${totalBytes} bytes, fewer than the 8-byte header length prefix of a safetensors file`,
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_TOO_LARGE',
      `${source}: header length prefix says ${length} bytes, more than the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not a safetensors file`,
    );
  }
  const headerBytes = Number(length);
  if (LENGTH_PREFIX_BYTES + headerBytes > totalBytes) {
    throw new SafetensorsError(
      'SAFETENSORS_TRUNCATED',
      `${source}: header length prefix says ${headerBytes} bytes but only ${totalBytes - LENGTH_PREFIX_BYTES} bytes follow it; the file is truncated or not a safetensors file`,
    );
  }
  return headerBytes;
}

/**
 * Decodes and validates the JSON header. Enforces what the reference implementation does: every
 * entry well-formed, byte spans matching dtype × shape, and the tensors tiling the data section
 * exactly (no overlaps, no gaps, no trailing bytes), so every byte of a valid file has one meaning.
 */
export function decodeHeader(
  headerBytes: Uint8Array,
  dataByteLength: number,
  source: string,
): SafetensorsHeader {
  const json = parseJsonObject(headerBytes, source);
  let metadata: Record<string, string> = {};
  const infos: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') metadata = checkMetadata(value, source);
    else infos.push(checkEntry(name, value, dataByteLength, source));
  }
  infos.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  checkTiling(infos, dataByteLength, source);
  return {
    metadata,
    tensors: new Map(infos.map((info) => [info.name, info])),
    dataStart: LENGTH_PREFIX_BYTES + headerBytes.byteLength,
    dataByteLength,
  };
}

function parseJsonObject(headerBytes: Uint8Array, source: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch (cause) {
    throw new SafetensorsError('SAFETENSORS_HEADER', `${source}: header is not valid UTF-8`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${source}: header is not valid JSON (${(cause as Error).message})`,
      { cause },
    );
  }
  if (!isPlainObject(json)) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${source}: header must be a JSON object mapping tensor names to entries, got ${describe(json)}`,
    );
  }
  return json;
}

function checkMetadata(value: unknown, source: string): Record<string, string> {
  if (!isPlainObject(value)) {
    throw new SafetensorsError(
      'SAFETENSORS_METADATA',
      `${source}: "__metadata__" must be an object of string values, got ${describe(value)}`,
    );
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') {
      throw new SafetensorsError(
        'SAFETENSORS_METADATA',
        `${source}: "__metadata__" entry ${JSON.stringify(key)} must be a string, got ${describe(entry)}`,
      );
    }
  }
  return value as Record<string, string>;
}

function checkEntry(
  name: string,
  value: unknown,
  dataByteLength: number,
  source: string,
): SafetensorsTensorInfo {
  const where = `${source}: tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(value)) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${where}: entry must be an object with dtype, shape and data_offsets, got ${describe(value)}`,
    );
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${where}: "dtype" must be a string, got ${describe(dtype)}`,
    );
  }
  if (!isDType(dtype)) {
    throw new SafetensorsError(
      'SAFETENSORS_DTYPE',
      `${where}: dtype ${dtype} is not supported; supported dtypes: ${DTYPES.join(', ')}`,
    );
  }
  if (!isIndexArray(shape)) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${where}: "shape" must be an array of non-negative integers, got ${describe(shape)}`,
    );
  }
  if (!isIndexArray(offsets) || offsets.length !== 2) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER',
      `${where}: "data_offsets" must be [begin, end] with non-negative integers, got ${describe(offsets)}`,
    );
  }
  const [begin, end] = offsets;
  if (end < begin) {
    throw new SafetensorsError(
      'SAFETENSORS_OFFSETS',
      `${where}: data_offsets [${begin}, ${end}] end before they begin`,
    );
  }
  const expected = byteLengthOf(dtype, shape, where);
  if (end - begin !== expected) {
    throw new SafetensorsError(
      'SAFETENSORS_SIZE',
      `${where}: dtype ${dtype} and shape [${shape.join(', ')}] need ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  if (end > dataByteLength) {
    throw new SafetensorsError(
      'SAFETENSORS_OFFSETS',
      `${where} ends at byte ${end} but the data section has ${dataByteLength} bytes`,
    );
  }
  return { name, dtype, shape, dataOffsets: [begin, end] };
}

function byteLengthOf(dtype: DType, shape: number[], where: string): number {
  try {
    return tensorByteLength(dtype, shape);
  } catch (cause) {
    throw new SafetensorsError(
      'SAFETENSORS_SIZE',
      `${where}: shape [${shape.join(', ')}] is too large to address`,
      { cause },
    );
  }
}

/** `infos` sorted by offsets; each must start exactly where the previous one ended. */
function checkTiling(infos: SafetensorsTensorInfo[], dataByteLength: number, source: string): void {
  let covered = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const info of infos) {
    const [begin, end] = info.dataOffsets;
    if (previous !== undefined && begin < covered) {
      throw new SafetensorsError(
        'SAFETENSORS_OVERLAP',
        `${source}: tensors ${JSON.stringify(previous.name)} (bytes [${previous.dataOffsets.join(', ')})) and ${JSON.stringify(info.name)} (bytes [${begin}, ${end})) overlap in the data section`,
      );
    }
    if (begin > covered) {
      throw new SafetensorsError(
        'SAFETENSORS_GAP',
        `${source}: data section bytes [${covered}, ${begin}) before tensor ${JSON.stringify(info.name)} belong to no tensor`,
      );
    }
    covered = end;
    previous = info;
  }
  if (covered !== dataByteLength) {
    throw new SafetensorsError(
      'SAFETENSORS_GAP',
      `${source}: data section has ${dataByteLength} bytes but the tensors cover only ${covered}; ${dataByteLength - covered} trailing bytes belong to no tensor`,
    );
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIndexArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((n) => Number.isSafeInteger(n) && n >= 0);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
