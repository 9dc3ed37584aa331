// LoRA adapter folders: what fedit writes is what PEFT writes, reads back unchanged, and anything
// tampered with or malformed is refused with an error naming the file and the tensor.

import test from 'ava';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  AdapterError,
  checkAdapterTarget,
  hashTensors,
  readAdapter,
  readSafetensorsFile,
  readSafetensorsHeader,
  tensorFromF32,
  tensorToF32,
  writeAdapter,
  writeSafetensorsFile,
  type AdapterConfigInit,
  type AdapterErrorCode,
  type Tensor,
} from '@fedit/shared';

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-adapter-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const RANK = 2;
const config: AdapterConfigInit = {
  rank: RANK,
  alpha: 4,
  targetModules: ['q_proj', 'v_proj'],
  baseModelNameOrPath: 'tiny-llama',
};
const name = (layer: number, module: string, factor: 'A' | 'B') =>
  `base_model.model.model.layers.${layer}.self_attn.${module}.lora_${factor}.weight`;

function values(count: number, seed: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 100 + i) / 4);
}

// Two layers, q_proj [8 <- 6] and v_proj [4 <- 6].
function loraValues(): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const layer of [0, 1]) {
    m.set(name(layer, 'q_proj', 'A'), values(RANK * 6, layer * 4 + 1));
    m.set(name(layer, 'q_proj', 'B'), values(8 * RANK, layer * 4 + 2));
    m.set(name(layer, 'v_proj', 'A'), values(RANK * 6, layer * 4 + 3));
    m.set(name(layer, 'v_proj', 'B'), values(4 * RANK, layer * 4 + 4));
  }
  return m;
}

test('an adapter written by fedit reads back with the same config, tensors, metadata and hash', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    const written = await writeAdapter(out, {
      config,
      tensors: loraValues(),
      metadata: { baseModelIdentity: 'sha256:abc', extra: { round: '3' } },
    });
    t.deepEqual((await readdir(out)).sort(), [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    t.deepEqual((await readdir(dir)).sort(), ['adapter'], 'no staging folder left behind');

    const read = await readAdapter(out);
    t.deepEqual(read.config, written.config);
    t.is(read.hash, written.hash);
    t.is(read.hash, hashTensors(read.tensors));
    t.deepEqual(read.metadata, {
      baseModelIdentity: 'sha256:abc',
      feditVersion: written.metadata.feditVersion,
      extra: { round: '3' },
    });
    t.regex(written.metadata.feditVersion ?? '', /^\d+\.\d+\.\d+/);
    for (const [n, v] of loraValues()) {
      const tensor = read.tensors.get(n)!;
      t.is(tensor.dtype, 'F32');
      t.deepEqual(tensorToF32(tensor), v, n);
    }
    t.deepEqual(
      read.modules.map((m) => [m.path, m.inFeatures, m.outFeatures]),
      [
        ['model.layers.0.self_attn.q_proj', 6, 8],
        ['model.layers.0.self_attn.v_proj', 6, 4],
        ['model.layers.1.self_attn.q_proj', 6, 8],
        ['model.layers.1.self_attn.v_proj', 6, 4],
      ],
    );
  });
});

test('the files are what PEFT writes: its config keys, its tensor names, fedit metadata beside format "pt"', async (t) => {
  await withTempDir(async (dir) => {
    const written = await writeAdapter(dir, { config, tensors: loraValues() });
    const json = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<
      string,
      unknown
    >;
    t.like(json, {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0,
      target_modules: ['q_proj', 'v_proj'],
      base_model_name_or_path: 'tiny-llama',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      modules_to_save: null,
      init_lora_weights: true,
      layers_to_transform: null,
      use_rslora: false,
      use_dora: false,
      revision: null,
    });
    t.false(
      Object.keys(json).some((k) => k.startsWith('fedit')),
      'no fedit key in adapter_config.json',
    );
    const header = await readSafetensorsHeader(join(dir, ADAPTER_WEIGHTS_FILE));
    t.deepEqual([...header.tensors.keys()].sort(), [...loraValues().keys()].sort());
    t.deepEqual(header.tensors.get(name(0, 'q_proj', 'A'))?.shape, [2, 6]);
    t.deepEqual(header.tensors.get(name(0, 'q_proj', 'B'))?.shape, [8, 2]);
    t.deepEqual(header.metadata, {
      format: 'pt',
      'fedit.tensors_hash': written.hash,
      'fedit.version': written.metadata.feditVersion,
    });
  });
});

test('F16 and BF16 adapters store that dtype and read back within its rounding', async (t) => {
  for (const dtype of ['F16', 'BF16'] as const) {
    await withTempDir(async (dir) => {
      await writeAdapter(dir, { config, tensors: loraValues() }, { dtype });
      const read = await readAdapter(dir);
      for (const [n, v] of loraValues()) {
        const tensor = read.tensors.get(n)!;
        t.is(tensor.dtype, dtype);
        const back = tensorToF32(tensor);
        const tolerance = dtype === 'F16' ? 1e-3 : 1e-2;
        t.true(
          back.every((x, i) => Math.abs(x - v[i]) <= tolerance * Math.abs(v[i]) + 1e-7),
          `${dtype} ${n}`,
        );
      }
    });
  }
});

test('tensors may be given as Tensors in any float dtype; they are stored in the asked dtype', async (t) => {
  await withTempDir(async (dir) => {
    const tensors = new Map<string, Tensor>([
      [name(0, 'q_proj', 'A'), tensorFromF32([2, 6], values(12, 1), 'BF16')],
      [name(0, 'q_proj', 'B'), tensorFromF32([8, 2], values(16, 2))],
    ]);
    const written = await writeAdapter(dir, { config, tensors });
    t.is(written.tensors.get(name(0, 'q_proj', 'A'))?.dtype, 'F32');
    t.deepEqual(
      tensorToF32(written.tensors.get(name(0, 'q_proj', 'A'))!),
      tensorToF32(tensors.get(name(0, 'q_proj', 'A'))!),
    );
    t.is((await readAdapter(dir)).hash, written.hash);
  });
});

test('reads an adapter folder exactly as PEFT saves it, without fedit metadata', async (t) => {
  await withTempDir(async (dir) => {
    await writeFile(
      join(dir, ADAPTER_CONFIG_FILE),
      JSON.stringify({
        alpha_pattern: {},
        auto_mapping: null,
        base_model_name_or_path: 'tiny-llama',
        bias: 'none',
        fan_in_fan_out: false,
        inference_mode: true,
        init_lora_weights: true,
        layer_replication: null,
        layers_pattern: null,
        layers_to_transform: null,
        loftq_config: {},
        lora_alpha: 16,
        lora_dropout: 0.05,
        megatron_config: null,
        megatron_core: 'megatron.core',
        modules_to_save: null,
        peft_type: 'LORA',
        r: 2,
        rank_pattern: {},
        revision: null,
        target_modules: ['v_proj', 'q_proj'],
        task_type: 'CAUSAL_LM',
        use_dora: false,
        use_rslora: true,
      }),
    );
    const tensors = new Map(
      [...loraValues()].map(([n, v]) => [
        n,
        tensorFromF32(n.endsWith('lora_A.weight') ? [2, 6] : [v.length / 2, 2], v, 'BF16'),
      ]),
    );
    await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
    const read = await readAdapter(dir);
    t.is(read.config.rank, 2);
    t.true(read.config.useRslora);
    t.deepEqual(read.metadata, {});
    t.is(read.modules.length, 4);
    t.is(read.hash, hashTensors(tensors));
  });
});

test('writing into a folder that holds files other than an adapter fails, overwrite or not, and names them', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'work');
    await mkdir(out);
    await writeFile(join(out, 'data.jsonl'), '{"instruction":"keep me"}\n');
    await writeFile(join(out, ADAPTER_CONFIG_FILE), '{}');
    const refused = await t.throwsAsync(writeAdapter(out, { config, tensors: loraValues() }), {
      instanceOf: AdapterError,
    });
    t.is(refused?.code, 'ADAPTER_EXISTS');
    const overwriting = await t.throwsAsync(
      writeAdapter(out, { config, tensors: loraValues() }, { overwrite: true }),
      { instanceOf: AdapterError },
    );
    t.is(overwriting?.code, 'ADAPTER_EXISTS');
    t.true(overwriting!.message.startsWith(`${out}: holds data.jsonl,`), overwriting!.message);
    t.regex(overwriting!.message, /not part of an adapter/);
    await t.throwsAsync(checkAdapterTarget(out, { overwrite: true }), { message: /holds data\.jsonl/ });
    t.deepEqual((await readdir(out)).sort(), [ADAPTER_CONFIG_FILE, 'data.jsonl'], 'untouched');
    t.is(await readFile(join(out, 'data.jsonl'), 'utf8'), '{"instruction":"keep me"}\n');
    t.deepEqual(await readdir(dir), ['work'], 'nothing staged');
  });
});

test('overwrite replaces an earlier adapter, model card included, and leaves nothing beside it', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    await writeAdapter(out, { config, tensors: loraValues() });
    await writeFile(join(out, 'README.md'), '# model card written by PEFT\n');
    const err = await t.throwsAsync(writeAdapter(out, { config, tensors: loraValues() }), {
      instanceOf: AdapterError,
    });
    t.is(err?.code, 'ADAPTER_EXISTS', 'not without asking');

    const changed = new Map([...loraValues()].map(([n, v]) => [n, v.map((x) => x * 2)]));
    const written = await writeAdapter(out, { config, tensors: changed }, { overwrite: true });
    t.deepEqual((await readdir(out)).sort(), [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    t.deepEqual(await readdir(dir), ['adapter'], 'no staging or previous folder left behind');
    t.is((await readAdapter(out)).hash, written.hash);
  });
});

test('the target of an adapter must be creatable: a file on its path is refused before any writing', async (t) => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, 'plain-file'), 'x');
    const out = join(dir, 'plain-file', 'adapter');
    const err = await t.throwsAsync(checkAdapterTarget(out), { instanceOf: AdapterError });
    t.is(
      err?.message,
      `${out}: cannot be created because ${join(dir, 'plain-file')} is a file, not a folder; choose another place for the adapter`,
    );
    await t.throwsAsync(checkAdapterTarget(join(dir, 'plain-file')), {
      message: /exists and is not a folder/,
    });
    await checkAdapterTarget(join(dir, 'new', 'deeper', 'adapter'));
    t.deepEqual(await readdir(dir), ['plain-file'], 'a check creates nothing');
  });
});

/** The state a kill between commitFolder's two renames leaves: old adapter aside, new one staged. */
async function crashBetweenRenames(dir: string): Promise<{ out: string; oldHash: string }> {
  const out = join(dir, 'adapter');
  const { hash: oldHash } = await writeAdapter(out, { config, tensors: loraValues() });
  await rename(out, join(dir, '.adapter.tmp-Ab12Cd.previous'));
  await mkdir(join(dir, '.adapter.tmp-Ab12Cd'));
  await writeFile(join(dir, '.adapter.tmp-Ab12Cd', ADAPTER_CONFIG_FILE), '{"r":');
  return { out, oldHash };
}

const negated = () => new Map([...loraValues()].map(([n, v]) => [n, v.map((x) => -x)]));

test("a reader between a write's two renames reads the earlier adapter where it lies, and the write then completes", async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    const { hash: oldHash } = await writeAdapter(out, { config, tensors: loraValues() });
    // The writer's state after its first rename: a complete new adapter staged, the earlier one aside.
    const staging = join(dir, '.adapter.tmp-Ab12Cd');
    const { hash: newHash } = await writeAdapter(staging, { config, tensors: negated() });
    await rename(out, `${staging}.previous`);
    const before = (await readdir(dir)).sort();

    t.is((await readAdapter(out)).hash, oldHash);
    t.deepEqual((await readdir(dir)).sort(), before, 'a reader changes nothing');

    // The writer's second rename finds the target free, as it left it.
    await rename(staging, out);
    await rm(`${staging}.previous`, { recursive: true });
    t.is((await readAdapter(out)).hash, newHash);
  });
});

test('a write killed between its renames is repaired by the next write, which then replaces the earlier adapter', async (t) => {
  await withTempDir(async (dir) => {
    const { out, oldHash } = await crashBetweenRenames(dir);
    // Without overwrite the restored adapter is refused like any earlier one: nothing is lost silently.
    await t.throwsAsync(writeAdapter(out, { config, tensors: loraValues() }), {
      message: /already holds files/,
    });
    t.is((await readAdapter(out)).hash, oldHash);
    t.deepEqual(await readdir(dir), ['adapter'], 'the unfinished staging folder is gone');

    const second = join(dir, 'second');
    await mkdir(second);
    const again = (await crashBetweenRenames(second)).out;
    const written = await writeAdapter(again, { config, tensors: negated() }, { overwrite: true });
    t.is((await readAdapter(again)).hash, written.hash);
    t.deepEqual(await readdir(second), ['adapter']);
  });
});

test('a write killed after its renames: the next write removes the stale earlier adapter, never other data', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    await writeAdapter(out, { config, tensors: loraValues() });
    await writeAdapter(join(dir, 'stale'), { config, tensors: loraValues() });
    await rename(join(dir, 'stale'), join(dir, '.adapter.tmp-Ab12Cd.previous'));
    await mkdir(join(dir, '.adapter.tmp-Zz99Yy.previous'));
    await writeFile(join(dir, '.adapter.tmp-Zz99Yy.previous', 'data.jsonl'), 'moved aside by an older fedit');
    await writeAdapter(out, { config, tensors: loraValues() }, { overwrite: true });
    t.deepEqual((await readdir(dir)).sort(), ['.adapter.tmp-Zz99Yy.previous', 'adapter']);
    t.is(
      await readFile(join(dir, '.adapter.tmp-Zz99Yy.previous', 'data.jsonl'), 'utf8'),
      'moved aside by an older fedit',
    );
  });
});

test('an earlier adapter left aside by a write that went through never comes back, even once the adapter is deleted', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    // Two writes killed after their second rename, each leaving the adapter it replaced.
    for (const suffix of ['Ab12Cd', 'Zz99Yy']) {
      await writeAdapter(join(dir, 'older'), { config, tensors: loraValues() });
      await rename(join(dir, 'older'), join(dir, `.adapter.tmp-${suffix}.previous`));
    }
    await writeAdapter(out, { config, tensors: negated() });
    await rm(out, { recursive: true }); // the user deletes the adapter

    const missing = await t.throwsAsync(readAdapter(out), { instanceOf: AdapterError });
    t.is(missing?.code, 'ADAPTER_MISSING');
    await checkAdapterTarget(out);
    t.deepEqual(await readdir(dir), [], 'the stale adapters are removed, not restored');
    await t.throwsAsync(readAdapter(out), { message: /no such adapter folder/ });
  });
});

test('two writes each killed between their renames: the next write names both and restores neither', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    for (const suffix of ['Ab12Cd', 'Zz99Yy']) {
      await writeAdapter(join(dir, `.adapter.tmp-${suffix}.previous`), { config, tensors: loraValues() });
      await writeAdapter(join(dir, `.adapter.tmp-${suffix}`), { config, tensors: negated() });
    }
    const before = (await readdir(dir)).sort();
    const err = await t.throwsAsync(checkAdapterTarget(out, { overwrite: true }), {
      instanceOf: AdapterError,
    });
    t.regex(
      err!.message,
      /2 interrupted writes each moved an earlier adapter aside .*Ab12Cd\.previous.*Zz99Yy\.previous/,
    );
    t.deepEqual((await readdir(dir)).sort(), before, 'nothing moved or removed');
  });
});

test('a reader sees whole adapters while another process keeps replacing them', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    // Adapters of different ranks: config of one with weights of another fails validation.
    const wide = { ...config, rank: 4 };
    const wideValues = new Map([...loraValues()].map(([n, v]) => [n, Float32Array.from([...v, ...v])]));
    const narrow = { config, tensors: loraValues() };
    const hashes = [
      (await writeAdapter(join(dir, 'wide'), { config: wide, tensors: wideValues })).hash,
      (await writeAdapter(out, narrow)).hash,
    ];
    await rm(join(dir, 'wide'), { recursive: true });
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 40; i++) {
        const next = i % 2 === 0 ? { config: wide, tensors: wideValues } : narrow;
        await writeAdapter(out, next, { overwrite: true });
      }
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const adapter = await readAdapter(out);
      t.true(hashes.includes(adapter.hash));
      reads++;
    }
    await writer;
    t.true(reads > 0);
    t.deepEqual(await readdir(dir), ['adapter']);
  });
});

test('writing into an existing empty folder fills it', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'empty');
    await mkdir(out);
    await writeAdapter(out, { config, tensors: loraValues() });
    t.is((await readAdapter(out)).modules.length, 4);
  });
});

test('invalid tensors are refused before anything is written', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'adapter');
    const cases: [Map<string, Float32Array | Tensor>, AdapterErrorCode, RegExp, { dtype?: 'F16' }?][] = [
      [new Map(), 'ADAPTER_EMPTY', /holds no tensors/],
      [
        new Map([...loraValues(), [name(0, 'q_proj', 'B'), Float32Array.of(1, NaN, 0, 0)]]),
        'ADAPTER_NOT_FINITE',
        /q_proj\.lora_B\.weight holds NaN at \[0, 1\]/,
      ],
      [
        new Map([...loraValues(), [name(1, 'v_proj', 'A'), values(7, 1)]]),
        'ADAPTER_SHAPE',
        /layers\.1\.self_attn\.v_proj\.lora_A\.weight has 7 values, which is not a positive multiple of the rank 2/,
      ],
      [
        new Map([
          ...loraValues(),
          [name(0, 'q_proj', 'A'), Float32Array.of(7e4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)],
        ]),
        'ADAPTER_NOT_FINITE',
        /q_proj\.lora_A\.weight holds Infinity at \[0, 0\] after conversion to F16/,
        { dtype: 'F16' },
      ],
      [
        new Map([...loraValues(), ['lm_head.weight', values(4, 1)]]),
        'ADAPTER_TENSOR_NAME',
        /lm_head\.weight is not a PEFT LoRA tensor/,
      ],
    ];
    for (const [tensors, code, message, options] of cases) {
      const err = await t.throwsAsync(writeAdapter(out, { config, tensors }, options), {
        instanceOf: AdapterError,
      });
      t.is(err?.code, code);
      t.regex(err?.message ?? '', message);
      t.deepEqual(await readdir(dir), [], `${code}: nothing written`);
    }
  });
});

test('fedit metadata keys cannot be overridden through extra', async (t) => {
  await withTempDir(async (dir) => {
    await t.throwsAsync(
      writeAdapter(dir, { config, tensors: loraValues(), metadata: { extra: { tensors_hash: 'x' } } }),
      { instanceOf: AdapterError, message: /"tensors_hash" is reserved/ },
    );
  });
});

// --- reading what others left on disk ------------------------------------------------------------

/** Writes a valid adapter into a fresh folder, lets `tamper` damage it, and returns the error on read. */
async function readTampered(
  tamper: (dir: string, tensors: Map<string, Tensor>, metadata: Record<string, string>) => Promise<void>,
): Promise<AdapterError> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-adapter-'));
  try {
    await writeAdapter(dir, { config, tensors: loraValues() });
    const file = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE));
    // Copies, so rewriting the file below cannot pull the bytes out from under the tensors.
    const tensors = new Map(
      [...file.tensors].map(([n, v]) => [n, { ...v, data: v.data.slice() }] as [string, Tensor]),
    );
    await tamper(dir, tensors, file.metadata);
    const err = await readAdapter(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof AdapterError)) throw new Error(`expected an AdapterError, got ${String(err)}`);
    return err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function rewriteTensors(
  dir: string,
  tensors: Map<string, Tensor>,
  metadata: Record<string, string>,
): Promise<void> {
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE), tensors, metadata);
}

async function editConfig(dir: string, edit: (json: Record<string, unknown>) => void): Promise<void> {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  const json = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(path, JSON.stringify(json));
}

const tamperCases: [
  string,
  (dir: string, tensors: Map<string, Tensor>, metadata: Record<string, string>) => Promise<void>,
  AdapterErrorCode,
  RegExp,
][] = [
  [
    'a missing adapter_config.json',
    (dir) => rm(join(dir, ADAPTER_CONFIG_FILE)),
    'ADAPTER_MISSING',
    /has no adapter_config\.json/,
  ],
  [
    'a missing adapter_model.safetensors',
    (dir) => rm(join(dir, ADAPTER_WEIGHTS_FILE)),
    'ADAPTER_MISSING',
    /has no adapter_model\.safetensors/,
  ],
  [
    'only a pickled adapter_model.bin',
    async (dir) => {
      await rm(join(dir, ADAPTER_WEIGHTS_FILE));
      await writeFile(join(dir, 'adapter_model.bin'), 'pickle');
    },
    'ADAPTER_UNSUPPORTED',
    /adapter_model\.bin.*safe_serialization=True/,
  ],
  [
    'an adapter_config.json that is not JSON',
    (dir) => writeFile(join(dir, ADAPTER_CONFIG_FILE), '{"peft_type": "LORA",'),
    'ADAPTER_CONFIG',
    /adapter_config\.json: not valid JSON/,
  ],
  [
    'another peft_type',
    (dir) => editConfig(dir, (j) => (j.peft_type = 'LOHA')),
    'ADAPTER_UNSUPPORTED',
    /peft_type "LOHA"/,
  ],
  [
    'r changed in the config',
    (dir) => editConfig(dir, (j) => (j.r = 4)),
    'ADAPTER_SHAPE',
    /layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \[2, 6\]; lora_A must be \[r, in_features\] with r = 4/,
  ],
  [
    'a non-positive alpha',
    (dir) => editConfig(dir, (j) => (j.lora_alpha = 0)),
    'ADAPTER_CONFIG',
    /lora_alpha must be a positive number/,
  ],
  [
    'a module dropped from target_modules',
    (dir) => editConfig(dir, (j) => (j.target_modules = ['q_proj'])),
    'ADAPTER_TARGET',
    /adapts module model\.layers\.0\.self_attn\.v_proj, which target_modules \["q_proj"\] does not name/,
  ],
  [
    'a lora_B removed',
    async (dir, tensors, metadata) => {
      tensors.delete(name(1, 'v_proj', 'B'));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_UNPAIRED',
    /layers\.1\.self_attn\.v_proj\.lora_A\.weight has no partner .*layers\.1\.self_attn\.v_proj\.lora_B\.weight/,
  ],
  [
    'a lora_A with the wrong rank',
    async (dir, tensors, metadata) => {
      tensors.set(name(0, 'v_proj', 'A'), tensorFromF32([3, 4], values(12, 9)));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_SHAPE',
    /layers\.0\.self_attn\.v_proj\.lora_A\.weight has shape \[3, 4\]/,
  ],
  [
    'a 1-D lora_B',
    async (dir, tensors, metadata) => {
      tensors.set(name(0, 'v_proj', 'B'), tensorFromF32([8], values(8, 9)));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_SHAPE',
    /layers\.0\.self_attn\.v_proj\.lora_B\.weight has shape \[8\]; lora_B must be \[out_features, r\]/,
  ],
  [
    'a NaN in lora_B',
    async (dir, tensors, metadata) => {
      const v = values(4 * RANK, 4);
      v[5] = NaN;
      tensors.set(name(1, 'v_proj', 'B'), tensorFromF32([4, 2], v));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_NOT_FINITE',
    /layers\.1\.self_attn\.v_proj\.lora_B\.weight holds NaN at \[2, 1\]/,
  ],
  [
    'an infinity in lora_A',
    async (dir, tensors, metadata) => {
      const v = values(RANK * 6, 1);
      v[0] = -Infinity;
      tensors.set(name(0, 'q_proj', 'A'), tensorFromF32([2, 6], v, 'BF16'));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_NOT_FINITE',
    /layers\.0\.self_attn\.q_proj\.lora_A\.weight holds -Infinity at \[0, 0\]/,
  ],
  [
    'an integer tensor',
    async (dir, tensors, metadata) => {
      tensors.set(name(0, 'q_proj', 'A'), { dtype: 'I32', shape: [2, 6], data: new Uint8Array(48) });
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_SHAPE',
    /q_proj\.lora_A\.weight has dtype I32/,
  ],
  [
    'a tensor that is not a LoRA factor',
    async (dir, tensors, metadata) => {
      tensors.set('base_model.model.lm_head.weight', tensorFromF32([2, 2], values(4, 1)));
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_TENSOR_NAME',
    /base_model\.model\.lm_head\.weight is not a PEFT LoRA tensor/,
  ],
  [
    'an embedding LoRA',
    async (dir, tensors, metadata) => {
      tensors.set(
        'base_model.model.model.embed_tokens.lora_embedding_A',
        tensorFromF32([2, 2], values(4, 1)),
      );
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_TENSOR_NAME',
    /LoRA on an embedding layer/,
  ],
  [
    'names that still carry PEFT adapter name',
    async (dir, tensors, metadata) => {
      const a = tensors.get(name(0, 'q_proj', 'A'))!;
      tensors.delete(name(0, 'q_proj', 'A'));
      tensors.set(name(0, 'q_proj', 'A').replace('.weight', '.default.weight'), a);
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_TENSOR_NAME',
    /still carries a PEFT adapter name/,
  ],
  [
    'tensor values changed after fedit wrote them',
    async (dir, tensors, metadata) => {
      const b = tensors.get(name(0, 'q_proj', 'B'))!;
      b.data[3] ^= 0x01;
      await rewriteTensors(dir, tensors, metadata);
    },
    'ADAPTER_HASH',
    /adapter_model\.safetensors: its tensors hash to sha256:[0-9a-f]{64}, but fedit recorded sha256:[0-9a-f]{64}/,
  ],
];

for (const [what, tamper, code, message] of tamperCases) {
  test(`reading refuses an adapter with ${what}`, async (t) => {
    const err = await readTampered(tamper);
    t.is(err.code, code, err.message);
    t.regex(err.message, message);
  });
}

test('reading a missing folder or a file instead of a folder says so', async (t) => {
  await withTempDir(async (dir) => {
    const missing = join(dir, 'nope');
    await t.throwsAsync(readAdapter(missing), {
      instanceOf: AdapterError,
      message: `${missing}: no such adapter folder`,
    });
    const file = join(dir, 'adapter.safetensors');
    await writeFile(file, 'x');
    const err = await t.throwsAsync(readAdapter(file), { instanceOf: AdapterError });
    t.is(err?.code, 'ADAPTER_MISSING');
    t.regex(err?.message ?? '', /not a folder; give the folder that holds adapter_config\.json/);
  });
});
