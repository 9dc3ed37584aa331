// The msgpackr codec for socket.io (protocol/codec.ts).
import test from 'ava';
import { Packr } from 'msgpackr';
import {
  Decoder,
  Encoder,
  msgpackParser,
  PacketType,
  packWire,
  ProtocolError,
  tensorFromF32,
  tensorFromWire,
  tensorToF32,
  tensorToWire,
  unpackWire,
  type Packet,
} from '@fedit/shared';

const raw = new Packr({ useRecords: false });

function roundTrip(packet: Packet): Packet {
  const frames = new Encoder().encode(packet);
  t_assertOneFrame(frames);
  const decoder = new Decoder();
  let decoded: Packet | undefined;
  decoder.on('decoded', (p) => (decoded = p));
  decoder.add(frames[0]);
  if (!decoded) throw new Error('nothing decoded');
  return decoded;
}

function t_assertOneFrame(frames: Uint8Array[]): void {
  if (frames.length !== 1) throw new Error(`expected one frame, got ${frames.length}`);
}

function decodeRaw(value: unknown): Packet {
  const decoder = new Decoder();
  let decoded: Packet | undefined;
  decoder.on('decoded', (p) => (decoded = p));
  decoder.add(raw.pack(value));
  return decoded as Packet;
}

test('has the shape socket.io expects of a parser', (t) => {
  t.is(msgpackParser.protocol, 5);
  t.is(msgpackParser.Encoder, Encoder);
  t.is(msgpackParser.Decoder, Decoder);
  t.deepEqual(PacketType, { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4 });
  const decoder = new Decoder();
  const listener = () => {};
  decoder.on('decoded', listener);
  decoder.off('decoded', listener);
  decoder.on('decoded', listener);
  decoder.destroy();
  t.is(decoder.listenerCount('decoded'), 0);
});

test('packets of every type round-trip, byte strings as plain Uint8Arrays', (t) => {
  const chunk = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
  const packets: Packet[] = [
    { type: PacketType.CONNECT, nsp: '/', data: { token: 'x' } },
    { type: PacketType.CONNECT, nsp: '/' },
    { type: PacketType.DISCONNECT, nsp: '/admin' },
    {
      type: PacketType.EVENT,
      nsp: '/',
      data: ['update:chunk', { uploadId: 'u', index: 3, data: chunk }],
      id: 7,
    },
    { type: PacketType.ACK, nsp: '/', data: [{ ok: true, received: 4 }], id: 7 },
    { type: PacketType.CONNECT_ERROR, nsp: '/', data: { message: 'not authorised' } },
    { type: PacketType.CONNECT_ERROR, nsp: '/', data: 'refused' },
  ];
  for (const packet of packets) {
    const decoded = roundTrip(packet);
    t.deepEqual(decoded, packet);
  }
  const event = roundTrip(packets[3]).data as [string, { data: Uint8Array }];
  t.is(event[1].data.constructor, Uint8Array);
  t.is(event[1].data.byteOffset, 0, 'copied into its own buffer, so aligned');
  t.is(event[1].data.buffer.byteLength, chunk.byteLength);
});

test('the encoder sends only the protocol fields and leaves out undefined properties', (t) => {
  const packet = {
    type: PacketType.EVENT,
    nsp: '/',
    data: ['round:open', { a: 1, b: undefined }],
    options: { compress: true },
  };
  const [frame] = new Encoder().encode(packet as Packet);
  t.deepEqual(raw.unpack(frame), { type: 2, nsp: '/', data: ['round:open', { a: 1 }] });
});

test('refuses to send a Float32Array, which msgpackr would corrupt, and other non-wire values', (t) => {
  // What msgpackr 2.1 does without moreTypes: element values truncated to bytes, the rest garbage.
  const floats = new Float32Array([1.5, -2.25, 3e9]);
  const mangled = raw.unpack(raw.pack({ a: floats })) as { a: Uint8Array };
  t.notDeepEqual(Buffer.from(mangled.a), Buffer.from(floats.buffer));

  const cases: [unknown, string][] = [
    [floats, 'packet.data[1].tensor'],
    [new Date(0), 'packet.data[1].tensor'],
    [new Map(), 'packet.data[1].tensor'],
    [10n, 'packet.data[1].tensor'],
    [Number.NaN, 'packet.data[1].tensor'],
    [new ArrayBuffer(4), 'packet.data[1].tensor'],
    [() => 1, 'packet.data[1].tensor'],
  ];
  for (const [value, field] of cases) {
    const error = t.throws(
      () => new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: ['x', { tensor: value }] }),
      { instanceOf: ProtocolError },
    );
    t.is(error.code, 'PROTOCOL_ENCODE');
    t.is(error.field, field);
  }
  t.regex(
    t.throws(() => packWire({ t: floats }), { instanceOf: ProtocolError }).message,
    /message\.t is a Float32Array; send tensors as raw bytes with dtype and shape/,
  );
});

test('refuses frames that are not binary, not MessagePack, or not a valid packet', (t) => {
  const reject = (frame: unknown, field: string) => {
    const decoder = new Decoder();
    const error = t.throws(() => decoder.add(frame), { instanceOf: ProtocolError });
    t.is(error.code, 'PROTOCOL_DECODE');
    t.is(error.field, field, String(error.message));
  };
  reject('2["hello"]', 'packet');
  reject(Uint8Array.of(0xc1), 'packet');
  reject(Uint8Array.of(0x92), 'packet'); // truncated array
  reject(raw.pack([1, 2]), 'packet');
  reject(raw.pack({ type: 5, nsp: '/', data: ['x'] }), 'packet.type');
  reject(raw.pack({ type: 2, nsp: 'chat', data: ['x'] }), 'packet.nsp');
  reject(raw.pack({ type: 2, nsp: '/', data: [] }), 'packet.data');
  reject(raw.pack({ type: 2, nsp: '/', data: [1] }), 'packet.data[0]');
  reject(raw.pack({ type: 2, nsp: '/', data: ['disconnect'] }), 'packet.data[0]');
  reject(raw.pack({ type: 2, nsp: '/', data: ['x'], id: -1 }), 'packet.id');
  reject(raw.pack({ type: 3, nsp: '/', data: [] }), 'packet.id');
  reject(raw.pack({ type: 1, nsp: '/', data: 'bye' }), 'packet.data');
  reject(raw.pack({ type: 0, nsp: '/', data: [1] }), 'packet.data');
  reject(raw.pack({ type: 2, nsp: '/', data: ['x'], extra: 1 }), 'packet.extra');
  reject(raw.pack({ type: 2, nsp: '/', data: ['x', { when: new Date(0) }] }), 'packet.data[1].when');
  reject(raw.pack({ type: 2, nsp: '/', data: ['x', { n: 2n ** 60n }] }), 'packet.data[1].n');
  reject(raw.pack({ type: 2, nsp: '/', data: ['x', { n: Number.NaN }] }), 'packet.data[1].n');
  reject(
    new Packr({ moreTypes: true, useRecords: false }).pack({ type: 2, nsp: '/', data: ['x', new Set([1])] }),
    'packet', // refused before decoding (msgpack-bounds.ts): a Set's extension reads nested values
  );
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  reject(raw.pack({ type: 2, nsp: '/', data: ['x', deep] }), 'packet.data[1]' + '[0]'.repeat(31));
});

test('accepts frames as ArrayBuffers (browser transports) and a __proto__ key cannot pollute', (t) => {
  const frame = raw.pack({ type: 2, nsp: '/', data: ['x', JSON.parse('{"__proto__": {"polluted": true}}')] });
  const copy = new ArrayBuffer(frame.byteLength);
  new Uint8Array(copy).set(frame);
  const decoder = new Decoder();
  let decoded: Packet | undefined;
  decoder.on('decoded', (p) => (decoded = p));
  decoder.add(copy);
  t.is(decoded?.type, 2);
  t.is(({} as { polluted?: boolean }).polluted, undefined);
  t.is(decodeRaw({ type: 2, nsp: '/', data: ['y'] }).nsp, '/');
});

test('packWire and unpackWire round-trip plain values', (t) => {
  const value = { a: [1, 'two', null, true], b: Uint8Array.of(1, 2, 3), c: -1.25 };
  t.deepEqual(unpackWire(packWire(value)), value);
  t.throws(() => unpackWire(Uint8Array.of(0xd9)), { instanceOf: ProtocolError, code: 'PROTOCOL_DECODE' });
});

test('Float32 tensors travel as raw little-endian bytes with dtype and shape', (t) => {
  const tensor = tensorFromF32([2, 3], Float32Array.from([1, -2, 3.5, 1e-8, 0, 7]));
  const frame = packWire({ tensor: tensorToWire(tensor) });
  const decoded = tensorFromWire((unpackWire(frame) as { tensor: unknown }).tensor);
  t.deepEqual(decoded, tensor);
  t.is(decoded.data.byteOffset % 4, 0);
  t.deepEqual(new Float32Array(decoded.data.buffer, decoded.data.byteOffset, 6), tensorToF32(tensor));
});

test('tensorFromWire realigns misaligned bytes and validates every field', (t) => {
  const backing = new Uint8Array(13);
  const misaligned = backing.subarray(1);
  new Float32Array(misaligned.slice().buffer).set([1, 2, 3]);
  const tensor = tensorFromWire({ dtype: 'F32', shape: [3], data: misaligned });
  t.is(tensor.data.byteOffset % 4, 0);
  const cases: [unknown, string, string][] = [
    [[], 'tensor', 'PROTOCOL_TYPE'],
    [{ dtype: 'F8', shape: [1], data: new Uint8Array(1) }, 'tensor.dtype', 'PROTOCOL_FORMAT'],
    [{ dtype: 'F32', shape: [1.5], data: new Uint8Array(4) }, 'tensor.shape[0]', 'PROTOCOL_RANGE'],
    [{ dtype: 'F32', shape: 'x', data: new Uint8Array(4) }, 'tensor.shape', 'PROTOCOL_TYPE'],
    [{ dtype: 'F32', shape: [2], data: new Uint8Array(4) }, 'tensor.data', 'PROTOCOL_INCONSISTENT'],
    [{ dtype: 'F32', shape: [1], data: [0, 0, 0, 0] }, 'tensor.data', 'PROTOCOL_TYPE'],
    [
      { dtype: 'F32', shape: [1], data: new Uint8Array(4), name: 'x' },
      'tensor.name',
      'PROTOCOL_UNKNOWN_FIELD',
    ],
  ];
  for (const [value, field, code] of cases) {
    const error = t.throws(() => tensorFromWire(value), { instanceOf: ProtocolError });
    t.is(error.field, field);
    t.is<string, string>(error.code, code);
  }
});

test("encoding never modifies the caller's (possibly frozen) message", (t) => {
  const payload = Object.freeze({ a: Object.freeze([1, Buffer.from([1, 2])]), b: 'x' });
  t.notThrows(() => new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: ['x', payload] }));
  t.true(Buffer.isBuffer(payload.a[1]));
});
