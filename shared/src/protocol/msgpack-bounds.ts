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

/**
 * What a format byte (0xc0-0xdf) is followed by: `fixed` bytes of value; a `length` field of that
 * many bytes, then that many bytes (str, bin); a `count` field, then that many values times
 * `perEntry` (array 1, map 2: key and value); or an extension this walk accepts.
 */
type Format =
  | { fixed: number }
  | { length: 1 | 2 | 4 }
  | { count: 2 | 4; perEntry: 1 | 2 }
  | { extension: 'undefined' | 'timestamp' };

const FORMATS: ReadonlyMap<number, Format> = new Map<number, Format>([
  [0xc0, { fixed: 0 }], // nil
  [0xc2, { fixed: 0 }], // false
  [0xc3, { fixed: 0 }], // true
  [0xc4, { length: 1 }], // bin 8
  [0xc5, { length: 2 }],
  [0xc6, { length: 4 }],
  [0xc7, { extension: 'timestamp' }], // ext 8 (a timestamp of 12 bytes)
  [0xca, { fixed: 4 }], // float 32
  [0xcb, { fixed: 8 }], // float 64
  [0xcc, { fixed: 1 }], // uint 8 .. 64
  [0xcd, { fixed: 2 }],
  [0xce, { fixed: 4 }],
  [0xcf, { fixed: 8 }],
  [0xd0, { fixed: 1 }], // int 8 .. 64
  [0xd1, { fixed: 2 }],
  [0xd2, { fixed: 4 }],
  [0xd3, { fixed: 8 }],
  [0xd4, { extension: 'undefined' }], // fixext 1
  [0xd6, { extension: 'timestamp' }], // fixext 4
  [0xd7, { extension: 'timestamp' }], // fixext 8
  [0xd9, { length: 1 }], // str 8
  [0xda, { length: 2 }],
  [0xdb, { length: 4 }],
  [0xdc, { count: 2, perEntry: 1 }], // array 16
  [0xdd, { count: 4, perEntry: 1 }], // array 32
  [0xde, { count: 2, perEntry: 2 }], // map 16
  [0xdf, { count: 4, perEntry: 2 }], // map 32
]);

/** Throws ProtocolError PROTOCOL_DECODE naming `field` when `bytes` passes one of `bounds`. */
export function checkMsgpackBounds(bytes: Uint8Array, bounds: MsgpackBounds, field: string): void {
  new FrameWalk(bytes, bounds, field).run();
}

class FrameWalk {
  readonly #view: DataView;
  // pending[d]: values still to read in the container open at depth d (pending[0]: the frame's one value).
  readonly #pending: number[] = [1];
  #position = 0;
  #total = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly bounds: MsgpackBounds,
    private readonly field: string,
  ) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  run(): void {
    const pending = this.#pending;
    while (pending.length > 0) {
      if (pending[pending.length - 1] === 0) {
        pending.pop();
        continue;
      }
      pending[pending.length - 1]--;
      if (++this.#total > this.bounds.maxTotalElements)
        this.#fail(`holds more than ${this.bounds.maxTotalElements} values, the limit of one frame`);
      this.#value();
    }
    const left = this.bytes.length - this.#position;
    if (left !== 0) this.#fail(`has ${left} bytes after its value`);
  }

  /** Reads one value's header and skips its bytes, or opens its container. */
  #value(): void {
    this.#need(1);
    const at = this.#position;
    const type = this.bytes[this.#position++];
    if (type <= 0x7f || type >= 0xe0) return; // positive and negative fixint
    if (type <= 0x8f) return this.#open((type & 0x0f) * 2); // fixmap
    if (type <= 0x9f) return this.#open(type & 0x0f); // fixarray
    if (type <= 0xbf) return this.#skip(type & 0x1f); // fixstr
    const format = FORMATS.get(type);
    if (!format) this.#fail(type === 0xc1 ? `holds the unused byte 0xc1 at offset ${at}` : extensionAt(at));
    else if ('fixed' in format) this.#skip(format.fixed);
    else if ('length' in format) this.#skip(this.#readLength(format.length));
    else if ('count' in format) this.#open(this.#readLength(format.count) * format.perEntry);
    else if (format.extension === 'undefined') this.#skipUndefined(at);
    else this.#skipTimestamp(type, at);
  }

  #open(elements: number): void {
    const { maxContainerElements, maxDepth } = this.bounds;
    if (elements > maxContainerElements)
      this.#fail(`holds a container of ${elements} elements, above the limit of ${maxContainerElements}`);
    // Every element takes at least one byte: a longer declaration is a lie about the frame.
    const left = this.bytes.length - this.#position;
    if (elements > left)
      this.#fail(`declares ${elements} elements at offset ${this.#position} but only ${left} bytes remain`);
    if (elements === 0) return;
    if (this.#pending.length >= maxDepth) this.#fail(`nests containers deeper than ${maxDepth} levels`);
    this.#pending.push(elements);
  }

  // fedit's encoder writes undefined in a list as fixext 1 of type 0 and data 0.
  #skipUndefined(at: number): void {
    this.#need(2);
    if (this.bytes[this.#position] !== 0 || this.bytes[this.#position + 1] !== 0) this.#fail(extensionAt(at));
    this.#position += 2;
  }

  // msgpackr builds a Date from a timestamp's own bytes, nothing nested, and codec.ts then refuses
  // it naming the field; every other extension is refused here.
  #skipTimestamp(type: number, at: number): void {
    const length = type === 0xd6 ? 4 : type === 0xd7 ? 8 : this.#readLength(1);
    this.#need(1);
    if (this.bytes[this.#position] !== 0xff || length > 12) this.#fail(extensionAt(at));
    this.#skip(1 + length);
  }

  #skip(n: number): void {
    this.#need(n);
    this.#position += n;
  }

  #readLength(size: 1 | 2 | 4): number {
    this.#need(size);
    const at = this.#position;
    this.#position += size;
    return size === 1
      ? this.#view.getUint8(at)
      : size === 2
        ? this.#view.getUint16(at)
        : this.#view.getUint32(at);
  }

  #need(n: number): void {
    const left = this.bytes.length - this.#position;
    if (n > left) this.#fail(`declares ${n} bytes at offset ${this.#position} but only ${left} remain`);
  }

  #fail(problem: string): never {
    throw new ProtocolError(
      'PROTOCOL_DECODE',
      this.field,
      `${this.field} ${problem}; refused before decoding`,
    );
  }
}

function extensionAt(offset: number): string {
  return `holds a MessagePack extension at offset ${offset}`;
}
