// A bounds check of a MessagePack frame that allocates nothing, run before the decoder.
//
// msgpackr builds every container a frame declares: a 5.7 MB frame of one-byte empty arrays
// (0x90) decodes into millions of JavaScript arrays, blocking the event loop for seconds and
// holding hundreds of MiB. checkMsgpackBounds walks the bytes once, reading only headers: it
// counts the elements (a map entry is two: key and value) of each container and of the whole
// frame, tracks the nesting depth, checks that every declared length fits in the bytes left, and
// stops at the first bound passed. It never creates a value, so a hostile frame costs at most a
// scan up to the bound, whatever it declares.
//
// Extensions are refused except two that hold no nested values: undefined (fixext 1, type 0; what
// fedit's encoder writes for undefined in a list) and a timestamp (type -1), which codec.ts then
// refuses naming the field. msgpackr decodes its other extensions (Error, Set, Map, RegExp...)
// by reading further MessagePack values this walk would have to follow, and no fedit message
// holds them.

import { ProtocolError } from './errors.ts';

export interface MsgpackBounds {
  /** Most elements of one container: an array's items, or a map's keys and values together. */
  maxContainerElements: number;
  /** Most values in the whole frame (containers, scalars, keys: every value counts one). */
  maxTotalElements: number;
  /** Most containers nested inside one another (the outermost counts one). */
  maxDepth: number;
}

/**
 * The bounds every fedit frame keeps. The largest honest messages: a round's selection (up to
 * MAX_SELECTED = 100,000 ids in one list) and an envelope's tensor schema (up to MAX_TENSORS =
 * 10,000 entries of about 15 values each); both stay far below.
 */
export const WIRE_BOUNDS: MsgpackBounds = {
  maxContainerElements: 200_000,
  maxTotalElements: 1_000_000,
  // codec.ts allows 32 levels below the packet and names the field nested too deep; this bound,
  // above that, only keeps a pathological frame from being decoded at all.
  maxDepth: 64,
};

/** Throws ProtocolError PROTOCOL_DECODE naming `field` when `bytes` passes one of `bounds`. */
export function checkMsgpackBounds(bytes: Uint8Array, bounds: MsgpackBounds, field: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (problem: string): never => {
    throw new ProtocolError('PROTOCOL_DECODE', field, `${field} ${problem}; refused before decoding`);
  };
  // pending[d]: values still to read in the container open at depth d (pending[0]: the frame's one value).
  const pending: number[] = [1];
  let position = 0;
  let total = 0;
  const need = (n: number): void => {
    if (n > bytes.length - position)
      fail(`declares ${n} bytes at offset ${position} but only ${bytes.length - position} remain`);
  };
  const open = (elements: number): void => {
    if (elements > bounds.maxContainerElements)
      fail(`holds a container of ${elements} elements, above the limit of ${bounds.maxContainerElements}`);
    // Every element takes at least one byte: a longer declaration is a lie about the frame.
    if (elements > bytes.length - position)
      fail(
        `declares ${elements} elements at offset ${position} but only ${bytes.length - position} bytes remain`,
      );
    if (elements === 0) return;
    if (pending.length >= bounds.maxDepth) fail(`nests containers deeper than ${bounds.maxDepth} levels`);
    pending.push(elements);
  };
  while (pending.length > 0) {
    if (pending[pending.length - 1] === 0) {
      pending.pop();
      continue;
    }
    pending[pending.length - 1]--;
    if (++total > bounds.maxTotalElements)
      fail(`holds more than ${bounds.maxTotalElements} values, the limit of one frame`);
    need(1);
    const type = bytes[position++];
    if (type <= 0x7f || type >= 0xe0 || type === 0xc0 || type === 0xc2 || type === 0xc3) continue; // fixint, nil, bool
    if (type <= 0x8f) open((type & 0x0f) * 2);
    else if (type <= 0x9f) open(type & 0x0f);
    else if (type <= 0xbf) skip(type & 0x1f);
    else {
      switch (type) {
        case 0xc4:
        case 0xd9:
          skip(readLength(1));
          break; // bin 8, str 8
        case 0xc5:
        case 0xda:
          skip(readLength(2));
          break; // bin 16, str 16
        case 0xc6:
        case 0xdb:
          skip(readLength(4));
          break; // bin 32, str 32
        case 0xca:
          skip(4);
          break; // float 32
        case 0xcb:
          skip(8);
          break; // float 64
        case 0xcc:
        case 0xd0:
          skip(1);
          break; // uint 8, int 8
        case 0xcd:
        case 0xd1:
          skip(2);
          break;
        case 0xce:
        case 0xd2:
          skip(4);
          break;
        case 0xcf:
        case 0xd3:
          skip(8);
          break;
        case 0xd4: // fixext 1: undefined (type 0, data 0)
          need(2);
          if (bytes[position] !== 0 || bytes[position + 1] !== 0) fail(extensionAt(position - 1));
          position += 2;
          break;
        case 0xd6: // fixext 4 and 8, ext 8 of 12 bytes: a timestamp (type -1)
        case 0xd7:
        case 0xc7:
          skipTimestamp(type);
          break;
        case 0xdc:
          open(readLength(2));
          break; // array 16
        case 0xdd:
          open(readLength(4));
          break; // array 32
        case 0xde:
          open(readLength(2) * 2);
          break; // map 16
        case 0xdf:
          open(readLength(4) * 2);
          break; // map 32
        default:
          fail(
            type === 0xc1
              ? `holds the unused byte 0xc1 at offset ${position - 1}`
              : extensionAt(position - 1),
          );
      }
    }
  }
  function extensionAt(offset: number): string {
    return `holds a MessagePack extension at offset ${offset}`;
  }
  if (position !== bytes.length) fail(`has ${bytes.length - position} bytes after its value`);

  // msgpackr builds a Date from a timestamp's own bytes, nothing nested, and codec.ts then refuses
  // it naming the field; every other extension is refused here.
  function skipTimestamp(type: number): void {
    const length = type === 0xd6 ? 4 : type === 0xd7 ? 8 : readLength(1);
    need(1);
    if (bytes[position] !== 0xff || length > 12) fail(extensionAt(position - 1));
    skip(1 + length);
  }
  function skip(n: number): void {
    need(n);
    position += n;
  }
  function readLength(size: 1 | 2 | 4): number {
    need(size);
    const n =
      size === 1 ? view.getUint8(position) : size === 2 ? view.getUint16(position) : view.getUint32(position);
    position += size;
    return n;
  }
}
