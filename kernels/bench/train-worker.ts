// One side of the training benchmark, run in its own process so its peak RSS is its own:
// fedit's compiled LoRA step on a random-weight model of a preset's shapes. Prints one JSON line.

import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PRESETS } from '../src/model/config.ts';
import type { LoraTarget } from '../src/model/lora.ts';
import { randomLlamaTensors, uniformSampler } from '../src/model/random.ts';
import { openWeightStore, writeWeightStore } from '../src/model/weights.ts';
import type { ExecutionProvider } from '../src/runtime/session.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer } from '../src/train/trainer.ts';
import { TRAIN_BENCH_OPTIONS } from './options.ts';

const { values: a } = parseArgs({
  options: {
    ...TRAIN_BENCH_OPTIONS,
    cache: { type: 'string', default: join(tmpdir(), 'fedit-bench') },
  },
});

const cfg = PRESETS[a.preset!];
if (!cfg) throw new Error(`unknown preset ${a.preset}; presets: ${Object.keys(PRESETS).join(', ')}`);
const batch = Number(a.batch);
const seq = Number(a.seq);
const dir = join(a.cache!, `${a.preset}-random0`);
const t0 = performance.now();
const store = existsSync(join(dir, 'weights.json'))
  ? openWeightStore(dir)
  : await writeWeightStore(dir, randomLlamaTensors(cfg, 0));
const prepareS = (performance.now() - t0) / 1000;

const lora = {
  rank: Number(a.rank),
  alpha: Number(a.alpha),
  dropout: 0,
  targets: a.targets!.split(',') as LoraTarget[],
};
const t1 = performance.now();
const trainer = await Trainer.create({
  model: cfg,
  weights: store,
  lora,
  batch,
  seq,
  optimizer: DEFAULT_ADAMW,
  seed: 0,
  provider: a.provider as ExecutionProvider,
  threads: Number(a.threads),
  onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
});
const compileS = (performance.now() - t1) / 1000;

// Same data as the reference: random ids, every position a target.
const rand = uniformSampler(0);
const rows = Array.from({ length: batch }, () => {
  const ids = Array.from({ length: seq }, () => Math.floor(rand() * cfg.vocabSize));
  return { inputIds: ids, labels: ids };
});
const times: number[] = [];
let loss = NaN;
for (let s = 0; s < Number(a.warmup) + Number(a.steps); s++) {
  const ts = performance.now();
  loss = (await trainer.trainStep([rows], 1e-4)).loss;
  if (s >= Number(a.warmup)) times.push(performance.now() - ts);
}
times.sort((x, y) => x - y);
const stepMs = times[Math.floor(times.length / 2)];
process.stdout.write(
  JSON.stringify({
    impl: 'fedit',
    provider: trainer.provider,
    step_ms: stepMs,
    tokens_per_s: (batch * seq) / (stepMs / 1000),
    loss,
    compile_s: compileS,
    prepare_s: prepareS,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }) + '\n',
);
await trainer.release();
