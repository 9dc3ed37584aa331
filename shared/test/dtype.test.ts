import test from 'ava';
import { DTYPES, dtypeByteSize, isDType } from '@fedit/shared';

test('each dtype has the byte size safetensors gives it', (t) => {
  t.deepEqual(Object.fromEntries(DTYPES.map((dtype) => [dtype, dtypeByteSize(dtype)])), {
    F64: 8,
    F32: 4,
    F16: 2,
    BF16: 2,
    I64: 8,
    I32: 4,
    U8: 1,
    BOOL: 1,
  });
});

test('isDType accepts exactly the known dtype names', (t) => {
  for (const dtype of DTYPES) t.true(isDType(dtype));
  for (const other of ['f32', 'F8_E4M3', 'toString', '__proto__', '', 32, null, undefined])
    t.false(isDType(other));
});
