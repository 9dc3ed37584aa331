// `npm run bench -- train ...`: fedit's LoRA training step against the PyTorch reference on the same
// shapes, measured side by side in one run, plus the machine's best MatMul rate. Prints one JSON
// line (--json) or a short report. Each side runs in its own process so peak RSS is per side.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PRESETS } from '../src/model/config.ts';
import type { LoraTarget } from '../src/model/lora.ts';
import { bestMatmul } from './matmul.ts';
import { trainStepFlops } from './flops.ts';
import { referenceCommand } from './reference.ts';
import { TRAIN_BENCH_OPTIONS } from './options.ts';

const here = dirname(fileURLToPath(import.meta.url));

function runJson(cmd: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  const rss = /"maxrss_kb":\s*(\d+)/.exec(r.stderr);
  if (rss) out.peak_rss_mb = Number(rss[1]) / 1024;
  return out;
}

export async function benchTrain(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      ...TRAIN_BENCH_OPTIONS,
      'no-reference': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const cfg = PRESETS[a.preset!];
  if (!cfg) throw new Error(`unknown preset ${a.preset}; presets: ${Object.keys(PRESETS).join(', ')}`);
  const batch = Number(a.batch);
  const seq = Number(a.seq);
  const threads = Number(a.threads);
  const lora = {
    rank: Number(a.rank),
    alpha: Number(a.alpha),
    dropout: 0,
    targets: a.targets!.split(',') as LoraTarget[],
  };
  const shared = [
    '--preset',
    a.preset!,
    '--batch',
    a.batch!,
    '--seq',
    a.seq!,
    '--rank',
    a.rank!,
    '--alpha',
    a.alpha!,
    '--targets',
    a.targets!,
    '--steps',
    a.steps!,
    '--warmup',
    a.warmup!,
    '--threads',
    a.threads!,
  ];

  const tokens = batch * seq;
  const d = cfg.hiddenSize;
  const matmul = await bestMatmul(threads, [
    [tokens, d, cfg.intermediateSize],
    [tokens, d, cfg.vocabSize],
  ]);
  const ours = runJson(process.execPath, [
    ...process.execArgv,
    join(here, 'train-worker.ts'),
    ...shared,
    '--provider',
    a.provider!,
  ]);
  const ref = a['no-reference'] ? undefined : referenceCommand();
  const torch = ref ? runJson(ref.python, [...ref.args, 'bench', ...shared]) : undefined;

  const flops = trainStepFlops(cfg, lora, batch, seq);
  const stepS = (ours.step_ms as number) / 1000;
  const achieved = flops / stepS / 1e9;
  const result = {
    bench: 'train',
    preset: a.preset,
    batch,
    seq,
    rank: lora.rank,
    targets: lora.targets,
    threads,
    provider: ours.provider,
    tokens_per_s: ours.tokens_per_s,
    step_ms: ours.step_ms,
    peak_rss_mb: ours.peak_rss_mb,
    compile_s: ours.compile_s,
    loss: ours.loss,
    flop_per_step: flops,
    flop_count: '4 x matmul params x tokens + attention (3 x 4 B H T^2 d) + 6 x LoRA params x tokens',
    achieved_gflops: achieved,
    best_matmul_gflops: matmul.best.gflops,
    best_matmul_shape: [matmul.best.m, matmul.best.k, matmul.best.n],
    flops_ratio_to_best_matmul: achieved / matmul.best.gflops,
    reference: torch ?? `not run: ${ref ? 'disabled' : 'no python3 with torch'}`,
    speedup_vs_reference: torch ? (ours.tokens_per_s as number) / (torch.tokens_per_s as number) : null,
    rss_ratio_to_reference: torch?.peak_rss_mb
      ? (ours.peak_rss_mb as number) / (torch.peak_rss_mb as number)
      : null,
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const f = (x: unknown, digits = 1) => (typeof x === 'number' ? x.toFixed(digits) : String(x));
  process.stdout.write(
    [
      `fedit LoRA step, ${a.preset} shapes, batch ${batch} x seq ${seq}, rank ${lora.rank} on ${lora.targets.join(',')}, ${threads} threads, ${ours.provider}`,
      `  fedit:    ${f(ours.tokens_per_s)} tokens/s, ${f(ours.step_ms, 0)} ms/step, peak RSS ${f(ours.peak_rss_mb, 0)} MB`,
      torch
        ? `  PyTorch:  ${f(torch.tokens_per_s)} tokens/s, ${f(torch.step_ms, 0)} ms/step, peak RSS ${f(torch.peak_rss_mb, 0)} MB  -> fedit is ${f(result.speedup_vs_reference, 2)}x`
        : `  PyTorch:  ${result.reference}`,
      `  compute:  ${f(achieved)} GFLOP/s achieved; best MatMul ${f(matmul.best.gflops)} GFLOP/s -> ${f(result.flops_ratio_to_best_matmul, 2)} of peak`,
    ].join('\n') + '\n',
  );
}
