// The wire codec: MessagePack (msgpackr) for socket.io, and the rules for what a message may hold.
//
// socket.io takes a custom parser as `parser: { Encoder, Decoder }` on both the server and the
// client (they must match). Encoder.encode(packet) returns the frames to send; a Decoder receives
// each frame through add(frame) and emits 'decoded' with the packet. One MessagePack frame holds
// one whole packet, binary included, so socket.io's BINARY_EVENT / BINARY_ACK attachments never
// occur (the same design as socket.io-msgpack-parser, protocol 5).
//
// What a message may hold, checked on both sides (ProtocolError PROTOCOL_ENCODE on send,
// PROTOCOL_DECODE on receipt): undefined, null, booleans, finite numbers, strings, Uint8Arrays,
// arrays and plain objects, nested at most 32 deep. Nothing else. In particular:
// - no Float32Array or other typed arrays: msgpackr 2.1 without `moreTypes` packs a Float32Array
//   as a byte string of its elements truncated to bytes followed by uninitialised memory, which
//   both corrupts the tensor and leaks heap contents. Tensors travel as raw little-endian bytes
//   with their dtype and shape (tensorToWire / tensorFromWire below);
// - no bigint: a 64-bit integer beyond 2^53 decodes as a bigint and is refused;
// - no Date, Map, Set, Error, RegExp: msgpackr decodes its extensions for them whatever the
//   options, so a peer could otherwise hand the validators objects they never expect.
// Byte strings decode as copies with their own ArrayBuffer (copyBuffers), so they are aligned for
// any typed-array view and never pin the frame they came in.
//
// Before msgpackr sees a frame: its size is checked against the decoder's frame limit (a
// coordinator keeps it at PRE_AUTH_MAX_FRAME_BYTES until the connection authenticates), and its
// element counts and nesting against WIRE_BOUNDS (msgpack-bounds.ts), without allocating.
import { EventEmitter } from 'node:events';
import { Packr, type Options } from 'msgpackr';
import { describe, plainBytes } from '../crypto/bytes.ts';
import { DTYPES, dtypeByteSize, isDType } from '../tensors/dtype.ts';
import { tensorByteLength, type Tensor } from '../tensors/tensor.ts';
import { ProtocolError } from './errors.ts';
import { MAX_FRAME_BYTES, MAX_TENSOR_DIM, MAX_TENSOR_RANK } from './limits.ts';
import { WIRE_BOUNDS, checkMsgpackBounds } from './msgpack-bounds.ts';

/** socket.io's packet types (socket.io-protocol v5) that a MessagePack parser uses. */
export const PacketType = {
  CONNECT: 0,
  DISCONNECT: 1,
  EVENT: 2,
  ACK: 3,
  CONNECT_ERROR: 4,
} as const;

export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

/** A socket.io packet as the parser sees it. */
export interface Packet {
  type: PacketTypeValue;
  nsp: string;
  data?: unknown;
  id?: number;
}

/** Event names socket.io reserves (socket.io-parser refuses them in incoming EVENT packets). */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

const MAX_DEPTH = 32;
const MAX_NAMESPACE_LENGTH = 256;

const options: Options & { skipValues: unknown[] } = {
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  copyBuffers: true,
  mapsAsObjects: true,
  int64AsType: 'bigint',
  // Properties set to undefined are left out, as in JSON, rather than sent as an extension.
  skipValues: [undefined],
};
const packr = new Packr(options);

/** Packs a message value after checking it holds only what fedit messages may hold. */
export function packWire(value: unknown, field = 'message'): Uint8Array {
  checkWireValue(value, field, 0, 'encode');
  return plainBytes(packr.pack(value));
}

/** Unpacks one MessagePack value and checks it; throws ProtocolError PROTOCOL_DECODE. */
export function unpackWire(bytes: Uint8Array, field = 'message'): unknown {
  checkMsgpackBounds(bytes, WIRE_BOUNDS, field);
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new ProtocolError(
      'PROTOCOL_DECODE',
      field,
      `${field} is not valid MessagePack (${(cause as Error).message})`,
      { cause },
    );
  }
  return checkWireValue(value, field, 0, 'decode');
}

/** socket.io parser Encoder: one MessagePack frame per packet. */
export class Encoder {
  encode(packet: Packet): Uint8Array[] {
    if (
      !Number.isInteger(packet.type) ||
      packet.type < PacketType.CONNECT ||
      packet.type > PacketType.CONNECT_ERROR
    ) {
      throw new ProtocolError(
        'PROTOCOL_ENCODE',
        'packet.type',
        `packet.type ${String(packet.type)} is not one this parser sends`,
      );
    }
    // Only the protocol's fields: socket.io-client adds bookkeeping (`options`) to the packet object.
    const frame: Packet = { type: packet.type, nsp: packet.nsp };
    if (packet.data !== undefined) frame.data = packet.data;
    if (packet.id !== undefined) frame.id = packet.id;
    return [packWire(frame, 'packet')];
  }
}

/**
 * socket.io parser Decoder. A frame that is not a valid packet throws ProtocolError from add(),
 * which socket.io turns into closing that one connection ("parse error"). socket.io makes one
 * Decoder per connection, so `maxFrameBytes` is that connection's limit: a frame above it is
 * refused from its length alone, before any of it is read.
 */
export class Decoder extends EventEmitter<{ decoded: [Packet] }> {
  maxFrameBytes: number;

  constructor(options: { maxFrameBytes?: number } = {}) {
    super();
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  add(frame: unknown): void {
    let bytes: Uint8Array;
    if (frame instanceof Uint8Array) bytes = frame;
    else if (frame instanceof ArrayBuffer) bytes = new Uint8Array(frame);
    else {
      throw new ProtocolError(
        'PROTOCOL_DECODE',
        'packet',
        `packet must be a binary frame, got ${describe(frame)}; both ends must use fedit's MessagePack parser`,
      );
    }
    if (bytes.byteLength > this.maxFrameBytes) {
      throw new ProtocolError(
        'PROTOCOL_RANGE',
        'packet',
        `packet is ${bytes.byteLength} bytes, above this connection's limit of ${this.maxFrameBytes}${this.maxFrameBytes < MAX_FRAME_BYTES ? ' (authenticate first: until then only small frames are accepted)' : ''}`,
      );
    }
    this.emit('decoded', checkPacket(unpackWire(bytes, 'packet')));
  }

  destroy(): void {
    this.removeAllListeners();
  }
}

/** The value to pass as socket.io's `parser` option, on the server and on the client. */
export const msgpackParser = { protocol: 5, PacketType, Encoder, Decoder } as const;

function checkPacket(value: unknown): Packet {
  const fail = (field: string, problem: string): never => {
    throw new ProtocolError('PROTOCOL_DECODE', field, `${field} ${problem}`);
  };
  if (!isPlainObject(value)) return fail('packet', `must be a map, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (key !== 'type' && key !== 'nsp' && key !== 'data' && key !== 'id')
      fail(`packet.${key}`, 'is not a packet field');
  }
  const { type, nsp, data, id } = value;
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 4) {
    fail('packet.type', `must be a packet type from 0 to 4, got ${describe(type)}`);
  }
  if (typeof nsp !== 'string' || !nsp.startsWith('/') || nsp.length > MAX_NAMESPACE_LENGTH) {
    fail('packet.nsp', `must be a namespace starting with '/', got ${describe(nsp)}`);
  }
  if (id !== undefined && (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)) {
    fail('packet.id', `must be a non-negative integer, got ${describe(id)}`);
  }
  switch (type) {
    case PacketType.CONNECT:
      if (data !== undefined && !isPlainObject(data))
        fail('packet.data', `of a CONNECT packet must be a map, got ${describe(data)}`);
      break;
    case PacketType.DISCONNECT:
      if (data !== undefined) fail('packet.data', 'must be absent in a DISCONNECT packet');
      break;
    case PacketType.EVENT: {
      if (!Array.isArray(data) || data.length === 0)
        fail('packet.data', 'of an EVENT packet must be [event name, ...arguments]');
      const name = (data as unknown[])[0];
      if (typeof name !== 'string' || RESERVED_EVENTS.has(name)) {
        fail('packet.data[0]', `must be an event name that is not reserved, got ${describe(name)}`);
      }
      break;
    }
    case PacketType.ACK:
      if (!Array.isArray(data)) fail('packet.data', 'of an ACK packet must be the list of arguments');
      if (id === undefined) fail('packet.id', 'is required in an ACK packet');
      break;
    case PacketType.CONNECT_ERROR:
      if (typeof data !== 'string' && !isPlainObject(data))
        fail('packet.data', 'of a CONNECT_ERROR packet must be a string or a map');
      break;
  }
  return value as unknown as Packet;
}

/**
 * Checks that `value` holds only wire-safe values; on decode also turns Buffers into plain
 * Uint8Arrays (same bytes, no copy) so decoded messages compare equal to what was sent.
 */
function checkWireValue(value: unknown, path: string, depth: number, mode: 'encode' | 'decode'): unknown {
  const fail = (problem: string): never => {
    throw new ProtocolError(
      mode === 'encode' ? 'PROTOCOL_ENCODE' : 'PROTOCOL_DECODE',
      path,
      `${path} ${problem}; fedit messages hold only null, booleans, finite numbers, strings, Uint8Arrays, arrays and plain objects`,
    );
  };
  if (depth > MAX_DEPTH) return fail(`nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : fail(`is ${value}`);
    case 'object':
      break;
    default:
      return fail(`is a ${typeof value}`);
  }
  if (value === null) return value;
  if (value instanceof Uint8Array) return mode === 'decode' ? plainBytes(value) : value;
  // Only decoded values (ours) are rewritten; what a caller sends is never modified.
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const checked = checkWireValue(value[i], `${path}[${i}]`, depth + 1, mode);
      if (checked !== value[i]) value[i] = checked;
    }
    return value;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      const checked = checkWireValue(value[key], `${path}.${key}`, depth + 1, mode);
      if (checked !== value[key]) value[key] = checked;
    }
    return value;
  }
  if (ArrayBuffer.isView(value)) {
    return fail(
      `is a ${value.constructor.name}; send tensors as raw bytes with dtype and shape (tensorToWire)`,
    );
  }
  return fail(`is a ${(value as object).constructor?.name ?? 'null-prototype object'}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** A tensor as it travels inside a message: dtype, shape and its raw little-endian bytes. */
export interface WireTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** The wire form of `tensor` (no copy: `data` is the same bytes). */
export function tensorToWire(tensor: Tensor): WireTensor {
  return { dtype: tensor.dtype, shape: [...tensor.shape], data: tensor.data };
}

/**
 * A tensor from its wire form, validated: known dtype, shape of non-negative integers, byte
 * length equal to dtype × shape. `data` is copied into a fresh buffer when its offset is not a
 * multiple of the element size, so `new Float32Array(t.data.buffer, t.data.byteOffset, n)` works.
 */
export function tensorFromWire(value: unknown, field = 'tensor'): Tensor {
  if (!isPlainObject(value)) {
    throw new ProtocolError(
      'PROTOCOL_TYPE',
      field,
      `${field} must be a map {dtype, shape, data}, got ${describe(value)}`,
    );
  }
  for (const key of Object.keys(value)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data') {
      throw new ProtocolError(
        'PROTOCOL_UNKNOWN_FIELD',
        `${field}.${key}`,
        `${field}.${key} is not a tensor field`,
      );
    }
  }
  const { dtype, shape, data } = value;
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    throw new ProtocolError(
      'PROTOCOL_FORMAT',
      `${field}.dtype`,
      `${field}.dtype must be one of ${DTYPES.join(', ')}, got ${describe(dtype)}`,
    );
  }
  if (!Array.isArray(shape) || shape.length > MAX_TENSOR_RANK) {
    throw new ProtocolError(
      'PROTOCOL_TYPE',
      `${field}.shape`,
      `${field}.shape must be a list of at most ${MAX_TENSOR_RANK} dimensions, got ${describe(shape)}`,
    );
  }
  shape.forEach((dim: unknown, i) => {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0 || dim > MAX_TENSOR_DIM) {
      throw new ProtocolError(
        'PROTOCOL_RANGE',
        `${field}.shape[${i}]`,
        `${field}.shape[${i}] must be an integer from 0 to ${MAX_TENSOR_DIM}, got ${describe(dim)}`,
      );
    }
  });
  if (!(data instanceof Uint8Array)) {
    throw new ProtocolError(
      'PROTOCOL_TYPE',
      `${field}.data`,
      `${field}.data must be bytes, got ${describe(data)}`,
    );
  }
  const expected = tensorByteLength(dtype, shape as number[]);
  if (data.byteLength !== expected) {
    throw new ProtocolError(
      'PROTOCOL_INCONSISTENT',
      `${field}.data`,
      `${field}.data holds ${data.byteLength} bytes, but a ${dtype} tensor of shape [${shape.join(', ')}] needs ${expected}`,
    );
  }
  const aligned = data.byteOffset % dtypeByteSize(dtype) === 0 ? plainBytes(data) : new Uint8Array(data);
  return { dtype, shape: [...(shape as number[])], data: aligned };
}
