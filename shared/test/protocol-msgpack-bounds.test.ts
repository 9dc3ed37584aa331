// Bounds checked before a frame is decoded (protocol/msgpack-bounds.ts, codec.ts): element
// counts, nesting, declared lengths, the per-connection frame limit.
import test, { type ExecutionContext } from 'ava';
import { Packr } from 'msgpackr';
import {
  Decoder,
  Encoder,
  MAX_FRAME_BYTES,
  MAX_SELECTED,
  PRE_AUTH_MAX_FRAME_BYTES,
  PacketType,
  ProtocolError,
  WIRE_BOUNDS,
  checkMsgpackBounds,
  packWire,
  unpackWire,
} from '@fedit/shared';

const raw = new Packr({ useRecords: false });
const withExtensions = new Packr({ useRecords: false, moreTypes: true });

/** An array32 header followed by `count` empty arrays: the adversarial client's frame. */
function emptyContainers(count: number): Uint8Array {
  const frame = new Uint8Array(5 + count).fill(0x90);
  frame[0] = 0xdd;
  new DataView(frame.buffer).setUint32(1, count);
  return frame;
}

function refusal(t: ExecutionContext, run: () => unknown, message: RegExp): void {
  const err = t.throws(run, { instanceOf: ProtocolError, message });
  t.is(err?.code, 'PROTOCOL_DECODE');
}

test('a frame of millions of empty containers is refused before any of them is built', (t) => {
  const frame = emptyContainers(MAX_FRAME_BYTES - 10); // about 5.7 MB, as the adversarial client sent
  const started = process.hrtime.bigint();
  refusal(
    t,
    () => unpackWire(frame, 'packet'),
    /packet holds a container of \d+ elements, above the limit of 200000/,
  );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // Decoding it took 2-2.7 s; a header read takes microseconds (a wide margin for a loaded machine).
  t.true(ms < 50, `took ${ms} ms`);
});

test('many small containers are refused once the frame passes its total of values', (t) => {
  // 5,000 arrays of 200 empty arrays: each container is small, the frame is not.
  const inner = new Uint8Array(3 + 200).fill(0x90);
  inner.set([0xdc, 0x00, 200]);
  const parts = [new Uint8Array([0xdc, 0x13, 0x88])]; // array16 of 5000
  for (let i = 0; i < 5000; i++) parts.push(inner);
  const frame = Buffer.concat(parts);
  refusal(t, () => unpackWire(frame), /message holds more than 1000000 values, the limit of one frame/);
});

test('nesting deeper than the bound is refused without recursion', (t) => {
  const frame = new Uint8Array(100_000).fill(0x91); // [[[[...]]]] 100,000 deep
  refusal(t, () => unpackWire(frame), /nests containers deeper than 64 levels/);
});

test('a declared length longer than the frame is refused', (t) => {
  refusal(
    t,
    () => unpackWire(new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])),
    /declares 4294967295 bytes at offset 5 but only 1 remain/,
  );
  refusal(
    t,
    () => unpackWire(new Uint8Array([0xdd, 0x00, 0x01, 0x00, 0x00, 0x90])),
    /declares 65536 elements at offset 5 but only 1 bytes remain/,
  );
  refusal(
    t,
    () => unpackWire(new Uint8Array([0x92, 0x01])),
    /declares 2 elements at offset 1 but only 1 bytes remain/,
  );
});

test('extensions other than undefined are refused before msgpackr builds them', (t) => {
  refusal(t, () => unpackWire(withExtensions.pack(new Set([1]))), /holds a MessagePack extension/);
  refusal(t, () => unpackWire(raw.pack(new Date(0))), /message is a Date/); // a timestamp: decoded, then refused by name
  refusal(t, () => unpackWire(withExtensions.pack(new Error('x'))), /holds a MessagePack extension/);
  refusal(t, () => unpackWire(new Uint8Array([0xc1])), /the unused byte 0xc1/);
  t.deepEqual(unpackWire(packWire([undefined, 1])), [undefined, 1]);
});

test('trailing bytes after the value are refused', (t) => {
  refusal(t, () => unpackWire(new Uint8Array([0x01, 0x02])), /has 1 bytes after its value/);
});

test('the largest honest messages stay within the bounds', (t) => {
  const selection = Array.from({ length: MAX_SELECTED }, (_, i) => i.toString(16).padStart(32, '0'));
  t.is(
    (unpackWire(packWire({ round: 1, selection })) as { selection: string[] }).selection.length,
    MAX_SELECTED,
  );
  const tensorSchema = Array.from({ length: 10_000 }, (_, i) => ({
    name: `base_model.model.model.layers.${i}.self_attn.q_proj.lora_A.weight`,
    shape: [16, 4096],
    dtype: 'F32',
  }));
  t.notThrows(() => checkMsgpackBounds(packWire({ envelope: { tensorSchema } }), WIRE_BOUNDS, 'packet'));
  // Every scalar type is walked correctly: the walk ends exactly at the end of the frame.
  const scalars = [
    null,
    true,
    false,
    0,
    127,
    -32,
    255,
    -129,
    65535,
    -40000,
    2 ** 32,
    -(2 ** 40),
    0.5,
    1e300,
    'x'.repeat(40),
    'y'.repeat(300),
    'z'.repeat(70_000),
    new Uint8Array(300),
    new Uint8Array(70_000),
    { k: [1, { m: 'n' }] },
  ];
  t.notThrows(() => checkMsgpackBounds(packWire(scalars), WIRE_BOUNDS, 'packet'));
  const float32 = new Uint8Array([0xca, 0x3f, 0x80, 0x00, 0x00]);
  t.is(unpackWire(float32), 1);
});

test("a decoder refuses frames above its connection's limit from their length alone", (t) => {
  const decoder = new Decoder({ maxFrameBytes: PRE_AUTH_MAX_FRAME_BYTES });
  const big = new Encoder().encode({
    type: PacketType.EVENT,
    nsp: '/',
    data: ['enrol', { pad: new Uint8Array(PRE_AUTH_MAX_FRAME_BYTES) }],
  })[0];
  const err = t.throws(() => decoder.add(big), {
    instanceOf: ProtocolError,
    message: /above this connection's limit of 16384 \(authenticate first/,
  });
  t.is(err?.code, 'PROTOCOL_RANGE');
  decoder.maxFrameBytes = MAX_FRAME_BYTES; // authenticated: the full limit
  let decoded = 0;
  decoder.on('decoded', () => decoded++);
  decoder.add(big);
  t.is(decoded, 1);
  t.is(new Decoder().maxFrameBytes, MAX_FRAME_BYTES, 'a client decoder takes whole chunks');
});
