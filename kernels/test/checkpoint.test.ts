// Hugging Face checkpoint folders as people have them: single or sharded safetensors, F32/F16/BF16,
// and the clear errors for folders that are not (quite) a supported model.

import test from 'ava';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { tensorFromF32, writeSafetensorsFile, type Tensor } from '@fedit/shared';
import { defaultWeightCacheDir, loadCheckpoint, writeHfCheckpoint } from '../src/model/checkpoint.ts';
import { PRESETS, toHfConfig } from '../src/model/config.ts';
import { randomLlamaTensors } from '../src/model/random.ts';
import { readFully, readWeight, writeFully } from '../src/model/weights.ts';

const cfg = PRESETS.tiny;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'fedit-ckpt-'));
}

test('F32, F16 and BF16 checkpoints load; the identity is the same for the same values', async (t) => {
  const dirs = { F32: tempDir(), F16: tempDir(), BF16: tempDir() };
  try {
    // values exactly representable in bf16 and f16 so all three hold the same numbers
    const tensors = [...randomLlamaTensors(cfg, 1)].map(
      ([n, s, d]) => [n, s, d.map((v) => Math.round(v * 256) / 256)] as const,
    );
    for (const [dtype, dir] of Object.entries(dirs))
      await writeHfCheckpoint(
        dir,
        cfg,
        tensors.map(([n, s, d]) => [n, s, Float32Array.from(d)]),
        dtype as 'F32',
      );
    const loaded = await Promise.all(Object.values(dirs).map((d) => loadCheckpoint(d)));
    t.is(loaded[0].identity, loaded[1].identity);
    t.is(loaded[0].identity, loaded[2].identity);
    t.regex(loaded[0].identity, /^sha256:[0-9a-f]{64}$/);
    const embed = readWeight(loaded[2].store, 'model.embed_tokens.weight');
    t.deepEqual(Array.from(embed.slice(0, 8)), Array.from(tensors[0][2].slice(0, 8)));
  } finally {
    for (const d of Object.values(dirs)) rmSync(d, { recursive: true, force: true });
  }
});

test('a different weight gives a different model identity', async (t) => {
  const a = tempDir();
  const b = tempDir();
  try {
    await writeHfCheckpoint(a, cfg, randomLlamaTensors(cfg, 1));
    await writeHfCheckpoint(b, cfg, randomLlamaTensors(cfg, 2));
    t.not((await loadCheckpoint(a)).identity, (await loadCheckpoint(b)).identity);
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('sharded checkpoints (model.safetensors.index.json) load like a single file', async (t) => {
  const single = tempDir();
  const sharded = tempDir();
  try {
    const tensors = [...randomLlamaTensors(cfg, 3)];
    await writeHfCheckpoint(single, cfg, tensors);
    const shards: Map<string, Tensor>[] = [new Map(), new Map()];
    const weightMap: Record<string, string> = {};
    tensors.forEach(([name, shape, data], i) => {
      shards[i % 2].set(name, tensorFromF32(shape, Float32Array.from(data)));
      weightMap[name] = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
    });
    await writeSafetensorsFile(join(sharded, 'model-00001-of-00002.safetensors'), shards[0]);
    await writeSafetensorsFile(join(sharded, 'model-00002-of-00002.safetensors'), shards[1]);
    writeFileSync(
      join(sharded, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    writeFileSync(join(sharded, 'config.json'), JSON.stringify(toHfConfig(cfg)));
    t.is((await loadCheckpoint(sharded)).identity, (await loadCheckpoint(single)).identity);
  } finally {
    rmSync(single, { recursive: true, force: true });
    rmSync(sharded, { recursive: true, force: true });
  }
});

test('the converted weights are cached and reused until the files change', async (t) => {
  const dir = tempDir();
  try {
    await writeHfCheckpoint(dir, cfg, randomLlamaTensors(cfg, 4));
    const first = await loadCheckpoint(dir);
    const dataFile = join(first.store.dir, first.store.file);
    const written = statSync(dataFile).mtimeMs;
    await new Promise((r) => setTimeout(r, 30));
    const again = await loadCheckpoint(dir);
    t.is(again.store.dir, first.store.dir);
    t.is(statSync(dataFile).mtimeMs, written, 'the second load converts nothing');
    // rewriting the checkpoint (new mtime) makes a new cache entry
    await writeHfCheckpoint(dir, cfg, randomLlamaTensors(cfg, 5));
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, 'model.safetensors'), later, later);
    const changed = await loadCheckpoint(dir);
    t.not(changed.store.dir, first.store.dir);
    t.not(changed.identity, first.identity);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('clear errors for folders that are not a supported model', async (t) => {
  const dir = tempDir();
  try {
    await t.throwsAsync(loadCheckpoint(dir), { message: /no config\.json/ });
    writeFileSync(join(dir, 'config.json'), '{ not json');
    await t.throwsAsync(loadCheckpoint(dir), { message: /config\.json: not valid JSON/ });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...toHfConfig(cfg), model_type: 'gpt2' }));
    await t.throwsAsync(loadCheckpoint(dir), {
      message: /model_type "gpt2" is not supported; fedit trains llama, mistral, qwen2 models/,
    });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(cfg)));
    await t.throwsAsync(loadCheckpoint(dir), {
      message: /no model\.safetensors or model\.safetensors\.index\.json/,
    });

    // a tensor missing, a tensor of the wrong shape
    const tensors = [...randomLlamaTensors(cfg, 6)];
    await writeHfCheckpoint(
      dir,
      cfg,
      tensors.filter(([n]) => n !== 'model.norm.weight'),
    );
    await t.throwsAsync(loadCheckpoint(dir), { message: /has no tensor model\.norm\.weight/ });
    await writeHfCheckpoint(
      dir,
      { ...cfg, intermediateSize: 96 },
      randomLlamaTensors({ ...cfg, intermediateSize: 96 }, 6),
    );
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfig(cfg)));
    await t.throwsAsync(loadCheckpoint(dir), {
      message:
        /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[96,64\], config\.json implies \[128,64\]/,
    });

    // a truncated file (an interrupted download)
    await writeHfCheckpoint(dir, cfg, tensors);
    const size = statSync(join(dir, 'model.safetensors')).size;
    truncateSync(join(dir, 'model.safetensors'), size - 100);
    const err = await t.throwsAsync(loadCheckpoint(dir));
    t.regex(err!.message, /model\.safetensors/);
    t.regex(err!.message, /truncated|ends at byte|bytes/i);

    // a shard the index lists but which is missing
    rmSync(join(dir, 'model.safetensors'));
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'model.norm.weight': 'model-00001-of-00002.safetensors' } }),
    );
    await t.throwsAsync(loadCheckpoint(dir), {
      message: /lists .*model-00001-of-00002\.safetensors, which is missing/,
    });
    t.true(readFileSync(join(dir, 'config.json'), 'utf8').includes('llama'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model folder that cannot be written caches its converted weights in the user cache folder', async (t) => {
  const dir = tempDir();
  const cache = tempDir();
  const previous = process.env.XDG_CACHE_HOME;
  try {
    await writeHfCheckpoint(dir, cfg, randomLlamaTensors(cfg, 8));
    process.env.XDG_CACHE_HOME = cache;
    t.is(
      defaultWeightCacheDir(dir, () => true),
      join(dir, '.fedit-cache'),
    );
    if (process.platform === 'linux')
      t.is(
        defaultWeightCacheDir(dir, () => false),
        join(cache, 'fedit', 'models'),
      );
    const loaded = await loadCheckpoint(dir, { cacheDir: defaultWeightCacheDir(dir, () => false) });
    t.true(loaded.store.dir.startsWith(cache) || process.platform !== 'linux');
  } finally {
    if (previous === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = previous;
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
});

test('the weight cache is found however the model folder is named: relative, absolute or through a symlink', async (t) => {
  const dir = tempDir();
  const link = `${dir}-link`;
  const cacheDir = tempDir();
  try {
    await writeHfCheckpoint(dir, cfg, randomLlamaTensors(cfg, 9));
    const first = await loadCheckpoint(dir, { cacheDir });
    const dataFile = join(first.store.dir, first.store.file);
    const written = statSync(dataFile).mtimeMs;
    symlinkSync(dir, link, 'dir');
    for (const spelling of [relative(process.cwd(), dir), `${dir}/./`, link]) {
      const again = await loadCheckpoint(spelling, { cacheDir });
      t.is(again.store.dir, first.store.dir, spelling);
      t.is(again.identity, first.identity);
    }
    t.is(statSync(dataFile).mtimeMs, written, 'nothing was converted again');
    // and the default cache folder inside the model folder is shared through the symlink too
    const viaDir = await loadCheckpoint(dir);
    const viaLink = await loadCheckpoint(link);
    t.is(basename(viaLink.store.dir), basename(viaDir.store.dir));
  } finally {
    rmSync(link, { force: true });
    rmSync(dir, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('tensors are read and written in bounded chunks (Node refuses one call of 2 GiB)', (t) => {
  const dir = tempDir();
  try {
    const path = join(dir, 'data.bin');
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37 + 11) % 251);
    const w = openSync(path, 'w');
    writeFully(w, data, 7); // 143 writes of at most 7 bytes
    closeSync(w);
    t.deepEqual(new Uint8Array(readFileSync(path)), data);
    const fd = openSync(path, 'r');
    try {
      const part = new Uint8Array(500);
      t.is(readFully(fd, part, 13, 7), 500);
      t.deepEqual(part, data.slice(13, 513));
      // past the end of the file: what is there, and the count says it is short
      const tail = new Uint8Array(100);
      t.is(readFully(fd, tail, 950, 7), 50);
      t.deepEqual(tail.slice(0, 50), data.slice(950));
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
