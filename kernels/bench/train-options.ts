// `npm run bench -- train-options [options] [--json]`: what the federated options of the training
// graphs (train/graphs.ts: FFA-LoRA's frozen A, FedProx's proximal term, SCAFFOLD's correction)
// cost per optimizer step against plain LoRA, on one model. Every variant has its own Trainer and
// their steps are interleaved round-robin (rotating) on the same batch, so the load of a shared machine falls on
// all of them alike; each reports its median and fastest step times and its train_step node count.
//
//   npm run bench -- train-options --model-dir /tmp/fedit-demo-cache/demo-base-v1-<id>   (the demo's base)
//   npm run bench -- train-options --preset smollm2-135m --batch 4 --seq 256              (random weights)

import { existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCheckpoint } from '../src/model/checkpoint.ts';
import { PRESETS, type LlamaConfig } from '../src/model/config.ts';
import { loraTensorSpecs, type LoraTarget } from '../src/model/lora.ts';
import { randomLlamaTensors, uniformSampler } from '../src/model/random.ts';
import { openWeightStore, writeWeightStore, type WeightStore } from '../src/model/weights.ts';
import type { ExecutionProvider } from '../src/runtime/session.ts';
import { buildStepGraph } from '../src/train/graphs.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer, type TrainerOptions } from '../src/train/trainer.ts';

async function openModel(a: { 'model-dir'?: string; preset?: string; cache?: string }) {
  if (a['model-dir']) {
    const m = await loadCheckpoint(a['model-dir']);
    return { name: a['model-dir'], config: m.config, store: m.store };
  }
  const config: LlamaConfig | undefined = PRESETS[a.preset!];
  if (!config) throw new Error(`unknown preset ${a.preset}; presets: ${Object.keys(PRESETS).join(', ')}`);
  const dir = join(a.cache!, `${a.preset}-random0`);
  const store: WeightStore = existsSync(join(dir, 'weights.json'))
    ? openWeightStore(dir)
    : await writeWeightStore(dir, randomLlamaTensors(config, 0));
  return { name: `${a.preset} (random weights)`, config, store };
}

export async function benchTrainOptions(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      'model-dir': { type: 'string' },
      preset: { type: 'string', default: 'smollm2-135m' },
      cache: { type: 'string', default: join(tmpdir(), 'fedit-bench') },
      // The demo's local training: rank 8 on all seven targets, batch 8, cut-off 64.
      batch: { type: 'string', default: '8' },
      seq: { type: 'string', default: '64' },
      rank: { type: 'string', default: '8' },
      alpha: { type: 'string', default: '16' },
      targets: { type: 'string', default: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj' },
      steps: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      mu: { type: 'string', default: '0.01' },
      threads: { type: 'string', default: String(availableParallelism()) },
      provider: { type: 'string', default: 'cpu' },
      json: { type: 'boolean', default: false },
    },
  });
  const model = await openModel(a);
  const lora = {
    rank: Number(a.rank),
    alpha: Number(a.alpha),
    dropout: 0,
    targets: a.targets!.split(',') as LoraTarget[],
  };
  const batch = Number(a.batch);
  const seq = Number(a.seq);
  const base: TrainerOptions = {
    model: model.config,
    weights: model.store,
    lora,
    batch,
    seq,
    optimizer: DEFAULT_ADAMW,
    seed: 0,
    provider: a.provider as ExecutionProvider,
    threads: Number(a.threads),
  };
  const rand = uniformSampler(1);
  const correction = new Map(
    loraTensorSpecs(model.config, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => (rand() - 0.5) * 1e-3),
    ]),
  );
  const mu = Number(a.mu);
  const variants: Record<string, Partial<TrainerOptions>> = {
    plain: {},
    ffa_lora: { freezeLoraA: true },
    fedprox: { proximal: { mu } },
    scaffold: { gradientCorrection: correction },
    ffa_lora_fedprox: { freezeLoraA: true, proximal: { mu } },
  };

  const runs = [];
  for (const [name, extra] of Object.entries(variants)) {
    const started = performance.now();
    const trainer = await Trainer.create({ ...base, ...extra });
    const gradientTerms = { proximal: 'proximal' in extra, correction: 'gradientCorrection' in extra };
    const nodes = buildStepGraph('train_step', { ...base, ...extra, gradientTerms }).nodes.length;
    runs.push({
      name,
      trainer,
      nodes,
      compileS: (performance.now() - started) / 1000,
      times: [] as number[],
    });
  }
  const rows = Array.from({ length: batch }, () => {
    const ids = Array.from({ length: seq }, () => Math.floor(rand() * model.config.vocabSize));
    return { inputIds: ids, labels: ids };
  });
  for (let s = 0; s < Number(a.warmup) + Number(a.steps); s++) {
    // Each round starts with another variant: no variant always runs right after the same one.
    for (const run of [...runs.slice(s % runs.length), ...runs.slice(0, s % runs.length)]) {
      const t0 = performance.now();
      await run.trainer.trainStep([rows], 1e-4);
      if (s >= Number(a.warmup)) run.times.push(performance.now() - t0);
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const plainMs = median(runs[0].times);
  const plainMinMs = Math.min(...runs[0].times);
  const result = {
    bench: 'train-options',
    model: model.name,
    batch,
    seq,
    rank: lora.rank,
    targets: lora.targets,
    threads: Number(a.threads),
    provider: runs[0].trainer.provider,
    steps: Number(a.steps),
    mu,
    variants: runs.map((r) => ({
      variant: r.name,
      step_ms: median(r.times),
      ratio_to_plain: median(r.times) / plainMs,
      // The fastest step: on a busy machine the least disturbed estimate of the intrinsic cost.
      min_step_ms: Math.min(...r.times),
      min_ratio_to_plain: Math.min(...r.times) / plainMinMs,
      train_step_nodes: r.nodes,
      compile_s: r.compileS,
    })),
  };
  for (const r of runs) await r.trainer.release();
  if (a.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const lines = [
    `train step by option, ${model.name}, batch ${batch} x seq ${seq}, rank ${lora.rank} on ${lora.targets.length} targets, ${result.threads} threads, ${result.provider}, median of ${result.steps} interleaved steps`,
    ...result.variants.map(
      (v) =>
        `  ${v.variant.padEnd(18)} median ${v.step_ms.toFixed(1).padStart(8)} ms/step x${v.ratio_to_plain.toFixed(3)}, fastest ${v.min_step_ms.toFixed(1).padStart(8)} ms x${v.min_ratio_to_plain.toFixed(3)}, ${v.train_step_nodes} nodes`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
