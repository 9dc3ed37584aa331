// Hugging Face checkpoint folders as people have them: single or sharded safetensors, F32/F16/BF16,
// and the clear errors for folders that are not (quite) a supported model.

import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
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

// ---- the converted-weight cache after a crash, a power loss or a concurrent writer ----

/** A checkpoint, its clean conversion in its own cache folder, and what that conversion holds. */
async function cleanConversion(seed: number) {
  const dir = tempDir();
  const cacheRoot = tempDir();
  await writeHfCheckpoint(dir, cfg, randomLlamaTensors(cfg, seed));
  const clean = await loadCheckpoint(dir, { cacheDir: cacheRoot });
  const entry = clean.store.dir;
  const files = {
    identity: join(entry, 'identity.txt'),
    index: join(entry, 'weights.json'),
    data: join(entry, clean.store.file),
  };
  const embed = readWeight(clean.store, 'model.embed_tokens.weight');
  return {
    dir,
    cacheRoot,
    clean,
    entry,
    files,
    bytes: { index: readFileSync(files.index), data: readFileSync(files.data) },
    embed,
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      rmSync(cacheRoot, { recursive: true, force: true });
    },
  };
}

type Conversion = Awaited<ReturnType<typeof cleanConversion>>;

/** Checks a load after damage: the clean identity and weights, and an entry whole again on disk. */
async function checkRecovers(t: ExecutionContext, c: Conversion, expectWarning: boolean) {
  const warnings: string[] = [];
  const again = await loadCheckpoint(c.dir, { cacheDir: c.cacheRoot, onWarning: (m) => warnings.push(m) });
  t.is(again.identity, c.clean.identity);
  t.is(again.store.dir, c.entry);
  t.deepEqual(readWeight(again.store, 'model.embed_tokens.weight'), c.embed);
  t.is(readFileSync(c.files.identity, 'utf8'), `${c.clean.identity}\n`);
  t.true(readFileSync(c.files.index).equals(c.bytes.index));
  t.true(
    readFileSync(c.files.data).equals(c.bytes.data),
    'the data file is the clean conversion, byte for byte',
  );
  if (expectWarning) {
    t.is(warnings.length, 1, warnings.join('\n'));
    t.true(warnings[0].includes(c.entry), 'the warning names the cache folder');
    t.false(warnings[0].includes('\n'));
  } else t.deepEqual(warnings, []);
  // and now it is trusted again, without converting
  const mtime = statSync(c.files.data).mtimeMs;
  const third = await loadCheckpoint(c.dir, { cacheDir: c.cacheRoot, onWarning: (m) => warnings.push(m) });
  t.is(third.identity, c.clean.identity);
  t.is(statSync(c.files.data).mtimeMs, mtime);
  return warnings;
}

const tornStates: [string, (c: Conversion) => void, RegExp][] = [
  ['an empty identity.txt', (c) => truncateSync(c.files.identity, 0), /identity\.txt is empty/],
  [
    'a half-written identity.txt',
    (c) => truncateSync(c.files.identity, 20),
    /identity\.txt holds no model identity/,
  ],
  ['no identity.txt (the commit marker)', (c) => rmSync(c.files.identity), /identity\.txt is missing/],
  ['an empty weights.json', (c) => truncateSync(c.files.index, 0), /weights\.json is empty/],
  [
    'a truncated weights.json',
    (c) => truncateSync(c.files.index, Math.floor(c.bytes.index.length / 2)),
    /weights\.json is not valid JSON/,
  ],
  ['no weights.json', (c) => rmSync(c.files.index), /weights\.json cannot be read/],
  [
    'a weights.json missing a tensor',
    (c) => {
      const index = JSON.parse(c.bytes.index.toString('utf8'));
      delete index.tensors['model.layers.0.input_layernorm.weight'];
      writeFileSync(c.files.index, JSON.stringify(index));
    },
    /weights\.json lists \d+ tensors/,
  ],
  [
    'a weights.json pointing outside its folder',
    (c) => {
      const index = JSON.parse(c.bytes.index.toString('utf8'));
      writeFileSync(c.files.index, JSON.stringify({ ...index, file: '../../model.safetensors' }));
    },
    /"file" is "\.\.\/\.\.\/model\.safetensors"/,
  ],
  [
    'a truncated data file',
    (c) => truncateSync(c.files.data, c.bytes.data.length - 4096),
    /weights\.float32\.bin is \d+ bytes; weights\.json says the tensors end at byte \d+/,
  ],
  ['an empty data file', (c) => truncateSync(c.files.data, 0), /weights\.float32\.bin is 0 bytes/],
  ['no data file', (c) => rmSync(c.files.data), /weights\.float32\.bin cannot be read/],
];

for (const [state, damage, reason] of tornStates) {
  test(`a cache entry with ${state} is converted again, with the identity of a clean load`, async (t) => {
    const c = await cleanConversion(20);
    try {
      damage(c);
      const warnings = await checkRecovers(t, c, true);
      t.regex(warnings[0], reason);
    } finally {
      c.cleanup();
    }
  });
}

test('a cache entry torn by a crash before its first file was committed is converted again, quietly', async (t) => {
  const c = await cleanConversion(21);
  try {
    for (const f of Object.values(c.files)) rmSync(f);
    await checkRecovers(t, c, false);
  } finally {
    c.cleanup();
  }
});

test('abandoned temporary files are removed from a cache entry; a live writer’s are left alone', async (t) => {
  const c = await cleanConversion(22);
  try {
    truncateSync(c.files.identity, 0);
    const longAgo = new Date(Date.now() - 60 * 60 * 1000);
    const abandoned = [
      '.weights.float32.bin.0123456789ab.tmp', // this version's temporary names
      '.identity.txt.ba9876543210.tmp',
      'weights.float32.bin.tmp', // the previous version's
      'weights.json.tmp',
      'forward_kv-0123456789abcdef.onnx.4242.tmp',
    ];
    for (const name of abandoned) {
      writeFileSync(join(c.entry, name), 'partial');
      utimesSync(join(c.entry, name), longAgo, longAgo);
    }
    // another process converting the same model at this moment
    const live = '.weights.json.fedcba987654.tmp';
    writeFileSync(join(c.entry, live), '{"dtype":');
    await checkRecovers(t, c, true);
    const left = readdirSync(c.entry).filter((n) => n.endsWith('.tmp'));
    t.deepEqual(left, [live]);
  } finally {
    c.cleanup();
  }
});

test('loads of one model at once, in one process, convert it once consistently', async (t) => {
  const c = await cleanConversion(23);
  try {
    const fresh = tempDir();
    try {
      const warnings: string[] = [];
      const loads = await Promise.all(
        [1, 2, 3].map(() => loadCheckpoint(c.dir, { cacheDir: fresh, onWarning: (m) => warnings.push(m) })),
      );
      for (const l of loads) t.is(l.identity, c.clean.identity);
      const entry = loads[0].store.dir;
      t.true(readFileSync(join(entry, 'weights.float32.bin')).equals(c.bytes.data));
      t.true(readFileSync(join(entry, 'weights.json')).equals(c.bytes.index));
      t.deepEqual(
        readdirSync(entry).filter((n) => n.endsWith('.tmp')),
        [],
      );
      t.deepEqual(warnings, []);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  } finally {
    c.cleanup();
  }
});

const CHILD_LOAD = `
import { loadCheckpoint } from ${JSON.stringify(new URL('../src/model/checkpoint.ts', import.meta.url).href)};
const m = await loadCheckpoint(process.argv[1], { cacheDir: process.argv[2] });
process.stdout.write(m.identity);
`;

/** A separate process loading `dir` with `cacheRoot`, as the demo's participants or the app's worker do. */
function childLoad(dir: string, cacheRoot: string): ChildProcess & { identity: Promise<string> } {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import=tsx', '--input-type=module', '-e', CHILD_LOAD, dir, cacheRoot],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const identity = new Promise<string>((resolve, reject) =>
    child.on('close', (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`child load: ${signal ?? code}: ${err}`)),
    ),
  );
  return Object.assign(child, { identity });
}

/** A model large enough that converting it takes a while, so a kill lands mid-conversion. */
const biggerCfg = { ...cfg, vocabSize: 4096, hiddenSize: 256, intermediateSize: 512, numLayers: 4 };

test('processes loading one model at once each get the identity of a clean load, and leave one whole entry', async (t) => {
  const dir = tempDir();
  const cacheRoot = tempDir();
  const reference = tempDir();
  try {
    await writeHfCheckpoint(dir, biggerCfg, randomLlamaTensors(biggerCfg, 24));
    const clean = await loadCheckpoint(dir, { cacheDir: reference });
    const ids = await Promise.all([1, 2, 3].map(() => childLoad(dir, cacheRoot).identity));
    t.deepEqual(ids, [clean.identity, clean.identity, clean.identity]);
    const warnings: string[] = [];
    const after = await loadCheckpoint(dir, { cacheDir: cacheRoot, onWarning: (m) => warnings.push(m) });
    t.is(after.identity, clean.identity);
    t.deepEqual(warnings, [], 'the entry the processes left is whole');
    t.true(
      readFileSync(join(after.store.dir, after.store.file)).equals(
        readFileSync(join(clean.store.dir, clean.store.file)),
      ),
    );
    t.deepEqual(
      readdirSync(after.store.dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
  } finally {
    for (const d of [dir, cacheRoot, reference]) rmSync(d, { recursive: true, force: true });
  }
});

test('a load killed (SIGKILL) at any moment leaves a cache the next load recovers from', async (t) => {
  if (process.platform === 'win32') return t.pass('SIGKILL is POSIX');
  const dir = tempDir();
  const cacheRoot = tempDir();
  const reference = tempDir();
  try {
    await writeHfCheckpoint(dir, biggerCfg, randomLlamaTensors(biggerCfg, 25));
    const clean = await loadCheckpoint(dir, { cacheDir: reference });
    const entry = join(cacheRoot, basename(clean.store.dir));
    // Kill as soon as the conversion is under way, then later and later into it.
    for (const delayMs of [0, 10, 20, 30, 60]) {
      rmSync(entry, { recursive: true, force: true });
      const child = childLoad(dir, cacheRoot);
      const outcome = child.identity.then(
        (id) => ({ id }),
        (err: Error) => ({ err }),
      );
      while (!existsSync(entry) && child.exitCode === null) await new Promise((r) => setTimeout(r, 1));
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      const o = await outcome;
      if ('id' in o) t.is(o.id, clean.identity); // finished before the kill
      // every leftover temporary file is abandoned now: age them past the live-writer window
      const longAgo = new Date(Date.now() - 60 * 60 * 1000);
      for (const n of existsSync(entry) ? readdirSync(entry) : [])
        if (n.endsWith('.tmp')) utimesSync(join(entry, n), longAgo, longAgo);
      const warnings: string[] = [];
      const next = await loadCheckpoint(dir, { cacheDir: cacheRoot, onWarning: (m) => warnings.push(m) });
      t.is(next.identity, clean.identity, `killed ${delayMs} ms in`);
      t.true(warnings.every((w) => w.includes(entry)));
      t.deepEqual(
        readdirSync(entry).filter((n) => n.endsWith('.tmp')),
        [],
      );
      t.true(
        readFileSync(join(entry, clean.store.file)).equals(
          readFileSync(join(clean.store.dir, clean.store.file)),
        ),
      );
    }
  } finally {
    for (const d of [dir, cacheRoot, reference]) rmSync(d, { recursive: true, force: true });
  }
});
