// The size an envelope's tensor schema implies (protocol/payload-size.ts).
import test from 'ava';
import {
  canonicalPayloadBytes,
  serializeSafetensors,
  tensorFromF32,
  type AnnouncedTensor,
  type Tensor,
} from '@fedit/shared';

const specOf = (name: string, t: Tensor): AnnouncedTensor => ({ name, dtype: t.dtype, shape: t.shape });

test('the arithmetic of the header: one F32 tensor of two elements, written out', (t) => {
  // {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} is 54 bytes, padded to 56; 8 + 56 + 8.
  t.is('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'.length, 54);
  t.is(canonicalPayloadBytes([{ name: 'a', dtype: 'F32', shape: [2] }]), 72);
});

test('equals the length of the canonical file for every kind of schema', (t) => {
  const cases: Map<string, Tensor>[] = [
    new Map([['x', tensorFromF32([3], new Float32Array(3))]]),
    new Map([
      [
        'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        tensorFromF32([4, 64], new Float32Array(256)),
      ],
      [
        'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
        tensorFromF32([64, 4], new Float32Array(256)),
      ],
    ]),
    new Map([
      ['scalar', tensorFromF32([], new Float32Array(1))],
      ['zero', tensorFromF32([0, 5], new Float32Array(0))],
      ['ünïcode "quoted"\\', tensorFromF32([2, 3], new Float32Array(6))],
      ['half', { dtype: 'F16', shape: [7], data: new Uint8Array(14) }],
      ['brain', { dtype: 'BF16', shape: [1, 9], data: new Uint8Array(18) }],
    ]),
  ];
  for (const tensors of cases) {
    const names = [...tensors.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const schema = names.map((n) => specOf(n, tensors.get(n)!));
    t.is(canonicalPayloadBytes(schema), serializeSafetensors(tensors).byteLength, names.join(','));
  }
});
