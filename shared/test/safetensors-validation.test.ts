import test, { type ExecutionContext } from 'ava';
import { parseSafetensors, SafetensorsError, type SafetensorsErrorCode } from '@fedit/shared';
import { rawSafetensors } from './helpers/raw-safetensors.ts';

const SOURCE = 'model.safetensors';

function rejects(t: ExecutionContext, bytes: Uint8Array, code: SafetensorsErrorCode, message: RegExp): void {
  t.throws(() => parseSafetensors(bytes, SOURCE), { instanceOf: SafetensorsError, code, message });
}

const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
  dtype: 'F32',
  shape,
  data_offsets: [begin, end],
});

test('rejects a file shorter than the 8-byte length prefix', (t) => {
  rejects(
    t,
    new Uint8Array(5),
    'SAFETENSORS_TRUNCATED',
    /^model\.safetensors: file has 5 bytes, fewer than the 8-byte/,
  );
  rejects(t, new Uint8Array(0), 'SAFETENSORS_TRUNCATED', /file has 0 bytes/);
});

test('rejects a header length prefix that reaches past the end of the file', (t) => {
  const file = rawSafetensors({ w: f32(0, 4) }, 4, { declaredLength: 1000n });
  rejects(
    t,
    file,
    'SAFETENSORS_TRUNCATED',
    /header length prefix says 1000 bytes but only \d+ bytes follow it/,
  );
});

test('rejects a header length prefix above 100 MB before looking for that many bytes', (t) => {
  rejects(
    t,
    rawSafetensors({}, 0, { declaredLength: 100_000_001n }),
    'SAFETENSORS_HEADER_TOO_LARGE',
    /100000001 bytes, more than/,
  );
  rejects(
    t,
    rawSafetensors({}, 0, { declaredLength: 2n ** 63n }),
    'SAFETENSORS_HEADER_TOO_LARGE',
    /9223372036854775808 bytes/,
  );
});

test('rejects a header that is not valid UTF-8', (t) => {
  const file = rawSafetensors('{"w":"  "}');
  file[12] = 0xff;
  rejects(t, file, 'SAFETENSORS_HEADER', /header is not valid UTF-8/);
});

test('rejects a header that is not JSON', (t) => {
  rejects(t, rawSafetensors('{"w": {'), 'SAFETENSORS_HEADER', /header is not valid JSON/);
  rejects(t, rawSafetensors(''), 'SAFETENSORS_HEADER', /header is not valid JSON/);
});

test('rejects a header that is JSON but not an object', (t) => {
  rejects(t, rawSafetensors('[]'), 'SAFETENSORS_HEADER', /header must be a JSON object .* got \[\]/);
  rejects(t, rawSafetensors('null'), 'SAFETENSORS_HEADER', /got null/);
  rejects(t, rawSafetensors('"w"'), 'SAFETENSORS_HEADER', /got "w"/);
});

test('rejects a tensor entry that is not an object', (t) => {
  rejects(t, rawSafetensors({ w: [0, 4] }), 'SAFETENSORS_HEADER', /tensor "w": entry must be an object/);
});

test('rejects a missing or non-string dtype', (t) => {
  rejects(
    t,
    rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, 4),
    'SAFETENSORS_HEADER',
    /tensor "w": "dtype" must be a string, got nothing/,
  );
  rejects(
    t,
    rawSafetensors({ w: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, 4),
    'SAFETENSORS_HEADER',
    /got 4/,
  );
});

test('rejects an unsupported dtype, naming it and the supported ones', (t) => {
  const file = rawSafetensors({ w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4);
  rejects(
    t,
    file,
    'SAFETENSORS_DTYPE',
    /tensor "w": dtype F8_E4M3 is not supported; supported dtypes: F64, F32, F16, BF16, I64, I32, U8, BOOL$/,
  );
});

test('rejects a shape that is missing or not a list of non-negative integers', (t) => {
  for (const shape of [undefined, 4, [-1], [1.5], ['4'], [null]]) {
    const file = rawSafetensors({ w: { dtype: 'U8', shape, data_offsets: [0, 4] } }, 4);
    rejects(t, file, 'SAFETENSORS_HEADER', /tensor "w": "shape" must be an array of non-negative integers/);
  }
});

test('rejects data_offsets that are missing or not two non-negative integers', (t) => {
  for (const offsets of [undefined, [0], [0, 4, 8], [-4, 0], [0, 4.5], '0,4', [0, 2 ** 53]]) {
    const file = rawSafetensors({ w: { dtype: 'U8', shape: [4], data_offsets: offsets } }, 4);
    rejects(t, file, 'SAFETENSORS_HEADER', /tensor "w": "data_offsets" must be \[begin, end\]/);
  }
});

test('rejects data_offsets whose end comes before their begin', (t) => {
  rejects(
    t,
    rawSafetensors({ w: f32(8, 4, [1]) }, 8),
    'SAFETENSORS_OFFSETS',
    /tensor "w": data_offsets \[8, 4\] end before they begin/,
  );
});

test('rejects a byte span that does not match dtype and shape', (t) => {
  const file = rawSafetensors({ w: f32(0, 20, [2, 3]) }, 20);
  rejects(
    t,
    file,
    'SAFETENSORS_SIZE',
    /tensor "w": dtype F32 and shape \[2, 3\] need 24 bytes but data_offsets \[0, 20\] span 20/,
  );
});

test('rejects a shape too large to address', (t) => {
  const file = rawSafetensors({ w: f32(0, 4, [2 ** 40, 2 ** 40]) }, 4);
  rejects(t, file, 'SAFETENSORS_SIZE', /tensor "w": shape \[1099511627776, 1099511627776\] is too large/);
});

test('rejects a tensor that ends past the data section', (t) => {
  const file = rawSafetensors({ 'lm_head.weight': f32(3072, 4096) }, 1024);
  rejects(
    t,
    file,
    'SAFETENSORS_OFFSETS',
    /^model\.safetensors: tensor "lm_head\.weight" ends at byte 4096 but the data section has 1024 bytes$/,
  );
});

test('rejects tensors that share bytes, naming both', (t) => {
  const file = rawSafetensors({ a: f32(0, 8), b: f32(4, 12) }, 12);
  rejects(
    t,
    file,
    'SAFETENSORS_OVERLAP',
    /tensors "a" \(bytes \[0, 8\)\) and "b" \(bytes \[4, 12\)\) overlap/,
  );
  const aliased = rawSafetensors({ a: f32(0, 8), b: f32(0, 8) }, 8);
  rejects(t, aliased, 'SAFETENSORS_OVERLAP', /overlap/);
});

test('rejects a gap between tensors', (t) => {
  const file = rawSafetensors({ a: f32(0, 4), b: f32(8, 12) }, 12);
  rejects(t, file, 'SAFETENSORS_GAP', /data section bytes \[4, 8\) before tensor "b" belong to no tensor/);
});

test('rejects bytes after the last tensor', (t) => {
  const file = rawSafetensors({ a: f32(0, 4) }, 7);
  rejects(
    t,
    file,
    'SAFETENSORS_GAP',
    /data section has 7 bytes but the tensors cover only 4; 3 trailing bytes/,
  );
  rejects(t, rawSafetensors({}, 1), 'SAFETENSORS_GAP', /1 trailing bytes/);
});

test('rejects __metadata__ that is not a map of strings to strings', (t) => {
  rejects(
    t,
    rawSafetensors({ __metadata__: ['pt'] }),
    'SAFETENSORS_METADATA',
    /"__metadata__" must be an object of string values/,
  );
  rejects(
    t,
    rawSafetensors({ __metadata__: { epoch: 3 } }),
    'SAFETENSORS_METADATA',
    /"__metadata__" entry "epoch" must be a string, got 3/,
  );
});
