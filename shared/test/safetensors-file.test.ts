import test from 'ava';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readSafetensorsFile,
  readSafetensorsHeader,
  SafetensorsError,
  serializeSafetensors,
  tensorFromF32,
  tensorToF32,
  TensorError,
  writeSafetensorsFile,
} from '@fedit/shared';
import { rawSafetensors } from './helpers/raw-safetensors.ts';

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-safetensors-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const weights = {
  'layers.0.lora_A': tensorFromF32([2, 2], new Float32Array([1, 2, 3, 4]), 'BF16'),
  'layers.0.lora_B': tensorFromF32([2], new Float32Array([0.5, -0.5])),
};

test('a written file reads back with the same tensors and metadata', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'adapter.safetensors');
    await writeSafetensorsFile(path, weights, { rank: '2' });
    t.deepEqual(new Uint8Array(await readFile(path)), serializeSafetensors(weights, { rank: '2' }));
    const { metadata, tensors } = await readSafetensorsFile(path);
    t.deepEqual(metadata, { rank: '2' });
    t.deepEqual([...tensorToF32(tensors.get('layers.0.lora_A')!)], [1, 2, 3, 4]);
    t.deepEqual([...tensorToF32(tensors.get('layers.0.lora_B')!)], [0.5, -0.5]);
  });
});

test('writing replaces an existing file and leaves no temporary file behind', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'adapter.safetensors');
    await writeFile(path, 'old contents');
    await writeSafetensorsFile(path, weights);
    t.deepEqual(await readdir(dir), ['adapter.safetensors']);
    t.is((await readSafetensorsFile(path)).tensors.size, 2);
  });
});

test('writing invalid tensors fails before touching the existing file', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'adapter.safetensors');
    await writeSafetensorsFile(path, weights);
    const before = await readFile(path);
    const broken = { w: { dtype: 'F32' as const, shape: [3], data: new Uint8Array(4) } };
    await t.throwsAsync(writeSafetensorsFile(path, broken), { instanceOf: TensorError, code: 'TENSOR_SIZE' });
    t.deepEqual(await readFile(path), before);
    t.deepEqual(await readdir(dir), ['adapter.safetensors']);
  });
});

test('errors reading a file name its path', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, serializeSafetensors(weights).subarray(0, 40));
    await t.throwsAsync(readSafetensorsFile(path), {
      instanceOf: SafetensorsError,
      code: 'SAFETENSORS_TRUNCATED',
      message: new RegExp(`^${path.replace(/[.\\]/g, '\\$&')}: header length prefix says`),
    });
    await t.throwsAsync(readSafetensorsHeader(path), {
      instanceOf: SafetensorsError,
      code: 'SAFETENSORS_TRUNCATED',
    });
    await writeFile(path, new Uint8Array(3));
    await t.throwsAsync(readSafetensorsHeader(path), {
      code: 'SAFETENSORS_TRUNCATED',
      message: /model\.safetensors: file has 3 bytes/,
    });
  });
});

test('reading a header from a path gives what reading it from the bytes gives', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'adapter.safetensors');
    await writeSafetensorsFile(path, weights, { rank: '2' });
    const fromPath = await readSafetensorsHeader(path);
    t.deepEqual(fromPath, await readSafetensorsHeader(new Uint8Array(await readFile(path))));
    t.deepEqual(fromPath.tensors.get('layers.0.lora_B'), {
      name: 'layers.0.lora_B',
      dtype: 'F32',
      shape: [2],
      dataOffsets: [8, 16],
    });
  });
});

test('reading a header from a path validates offsets against the file size', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, rawSafetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4));
    await t.throwsAsync(readSafetensorsHeader(path), {
      code: 'SAFETENSORS_OFFSETS',
      message: /tensor "w" ends at byte 8 but the data section has 4 bytes/,
    });
  });
});

test('reads the header of a checkpoint larger than Node can read into memory in one call', async (t) => {
  // A sparse file just over 2 GiB, the most fs.readFile accepts: the header can only come back
  // (and quickly) if it is read on its own rather than with the data.
  await withTempDir(async (dir) => {
    const path = join(dir, 'huge.safetensors');
    const dataBytes = 2 ** 31 + 1024;
    const head = rawSafetensors({
      embed: { dtype: 'BF16', shape: [dataBytes / 2], data_offsets: [0, dataBytes] },
    });
    const handle = await open(path, 'w');
    try {
      await handle.write(head);
      await handle.truncate(head.byteLength + dataBytes);
    } finally {
      await handle.close();
    }
    const header = await readSafetensorsHeader(path);
    t.is(header.dataStart, head.byteLength);
    t.is(header.dataByteLength, dataBytes);
    t.deepEqual(header.tensors.get('embed')?.shape, [dataBytes / 2]);
  });
});
