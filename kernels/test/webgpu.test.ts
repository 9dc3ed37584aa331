// The WebGPU path against the CPU path: the same tiny model, the same initial adapter and the same
// batches must give the same losses and the same trained LoRA tensors on both execution providers,
// with every graph (train_step, grad_step, apply_step, eval_step, readback) running on WebGPU alone
// (session.disable_cpu_ep_fallback=1). Skipped, with the reason, where the WebGPU EP cannot start
// (no GPU and no software Vulkan); FEDIT_REQUIRE_WEBGPU=1 turns that skip into a failure.
//
// Also: a provider that cannot start (CUDA without its download) falls back to the CPU with a warning.

import test, { type ExecutionContext } from 'ava';
import type * as ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../src/graph/ir.ts';
import { add } from '../src/graph/ops.ts';
import { loadCheckpoint, writeHfCheckpoint } from '../src/model/checkpoint.ts';
import { PRESETS, type LlamaConfig } from '../src/model/config.ts';
import { LORA_TARGETS, loraTensorSpecs, type LoraConfig } from '../src/model/lora.ts';
import { normalSampler, randomLlamaTensors } from '../src/model/random.ts';
import type { WeightStore } from '../src/model/weights.ts';
import { createSession, type ExecutionProvider } from '../src/runtime/session.ts';
import type { TokenRow } from '../src/train/batch.ts';
import { buildStepGraph, type StepKind } from '../src/train/graphs.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer, type TrainerOptions } from '../src/train/trainer.ts';
import { webgpuRequired, webgpuUnavailable } from './helpers/webgpu.ts';

const model = PRESETS.tiny;
const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] };
const BATCH = 2;
const SEQ = 16;
const STEPS = 5;
const LR = 1e-2;
/** Relative tolerance between providers (float32 on both; different kernels and summation orders). */
const TOL = 1e-3;

let dir: string;
let weights: WeightStore;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedit-webgpu-'));
  await writeHfCheckpoint(join(dir, 'model'), model, randomLlamaTensors(model, 5, 0.1));
  ({ store: weights } = await loadCheckpoint(join(dir, 'model'), { cacheDir: join(dir, 'cache') }));
});
test.after.always(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Random rows, some shorter than SEQ (padding) and with masked prompts (ignored labels). */
function rowsFor(seed: number, count: number): TokenRow[] {
  const rnd = normalSampler(seed);
  const pick = () => Math.floor(Math.abs(rnd() * 1000)) % model.vocabSize;
  return Array.from({ length: count }, (_, i) => {
    const n = i % 2 === 0 ? SEQ : SEQ - 5;
    const prompt = i % 3;
    const ids = Array.from({ length: n }, pick);
    return { inputIds: ids, labels: ids.map((t, j) => (j < prompt ? -100 : t)) };
  });
}

/** A non-zero B on purpose: with PEFT's B = 0 the first step leaves every lora_A gradient at zero. */
function initialLora(): Map<string, Float32Array> {
  const rnd = normalSampler(42);
  return new Map(
    loraTensorSpecs(model, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * 0.1),
    ]),
  );
}

interface Run {
  provider: ExecutionProvider;
  losses: number[];
  gradNorms: number[];
  tokens: number[];
  evalLoss: number;
  state: Map<string, Float32Array | Float64Array>;
  params: Map<string, Float32Array | Float64Array>;
  stateLocations: string[];
  ms: number;
}

async function train(
  provider: ExecutionProvider,
  microBatches: number,
  steps: number,
  extra: Partial<TrainerOptions> = {},
): Promise<Run> {
  const started = Date.now();
  const options: TrainerOptions = {
    model,
    weights,
    lora,
    batch: BATCH,
    seq: SEQ,
    optimizer: { ...DEFAULT_ADAMW },
    seed: 0,
    provider,
    microBatches,
    initial: initialLora(),
    forbidCpuFallback: true,
    ...extra,
  };
  const trainer = await Trainer.create(options);
  try {
    if (trainer.provider !== provider) throw new Error(`asked for ${provider}, got ${trainer.provider}`);
    const run: Run = {
      provider,
      losses: [],
      gradNorms: [],
      tokens: [],
      evalLoss: 0,
      state: new Map(),
      params: new Map(),
      stateLocations: [],
      ms: 0,
    };
    for (let s = 0; s < steps; s++) {
      const batches = Array.from({ length: microBatches }, (_, m) => rowsFor(1000 + s * 10 + m, BATCH));
      const r = await trainer.trainStep(batches, LR);
      run.losses.push(r.loss);
      run.gradNorms.push(r.gradNorm);
      run.tokens.push(r.tokens);
    }
    const ev = await trainer.evaluate(rowsFor(7, BATCH));
    run.evalLoss = ev.lossSum / ev.tokens;
    // On WebGPU the trained tensors and Adam moments must stay in GPU buffers between steps (a peek at
    // the trainer's private state: nothing public tells where a tensor lives).
    // The fixed inputs of FedProx and SCAFFOLD (anchors, corrections; not the scalar mu) too.
    const peek = trainer as unknown as {
      state: Map<string, ort.Tensor>;
      termFeeds: Record<string, ort.Tensor>;
    };
    const fixed = Object.entries(peek.termFeeds).filter(([name]) => name !== 'proximal_mu');
    const locations = new Set([...peek.state.values(), ...fixed.map(([, x]) => x)].map((x) => x.location));
    run.stateLocations = [...locations];
    run.state = (await trainer.exportState()).tensors; // on WebGPU: through the readback graph
    run.params = await trainer.parameters();
    run.ms = Date.now() - started;
    return run;
  } finally {
    await trainer.release();
  }
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/** Worst over tensors of max|a - b| / max|b|. */
function worstTensorError(a: Map<string, ArrayLike<number>>, b: Map<string, ArrayLike<number>>) {
  let worst = { err: 0, name: '' };
  for (const [name, ref] of b) {
    const mine = a.get(name);
    if (!mine || mine.length !== ref.length) return { err: Infinity, name: `${name} (missing or resized)` };
    let scale = 1e-30;
    let diff = 0;
    for (let i = 0; i < ref.length; i++) {
      scale = Math.max(scale, Math.abs(ref[i]));
      diff = Math.max(diff, Math.abs(mine[i] - ref[i]));
    }
    if (!(diff / scale <= worst.err)) worst = { err: diff / scale, name };
  }
  return worst;
}

function compare(t: ExecutionContext, gpu: Run, cpu: Run, initial: Map<string, Float32Array>) {
  t.log(
    `cpu ${cpu.ms} ms, webgpu ${gpu.ms} ms; losses cpu [${cpu.losses.map((l) => l.toFixed(5))}] webgpu [${gpu.losses.map((l) => l.toFixed(5))}]`,
  );
  t.deepEqual(gpu.tokens, cpu.tokens);
  t.deepEqual(gpu.stateLocations, ['gpu-buffer'], 'WebGPU training state stays on the GPU');
  t.deepEqual(cpu.stateLocations, ['cpu']);
  for (let s = 0; s < cpu.losses.length; s++) {
    t.true(Number.isFinite(gpu.losses[s]), `step ${s + 1}: webgpu loss ${gpu.losses[s]}`);
    t.true(
      rel(gpu.losses[s], cpu.losses[s]) < TOL,
      `step ${s + 1}: loss webgpu ${gpu.losses[s]} vs cpu ${cpu.losses[s]}`,
    );
    t.true(
      rel(gpu.gradNorms[s], cpu.gradNorms[s]) < TOL,
      `step ${s + 1}: grad norm webgpu ${gpu.gradNorms[s]} vs cpu ${cpu.gradNorms[s]}`,
    );
  }
  t.true(rel(gpu.evalLoss, cpu.evalLoss) < TOL, `eval loss webgpu ${gpu.evalLoss} vs cpu ${cpu.evalLoss}`);

  // Training moved the adapter (the comparison below is not between two copies of the initial one).
  const moved = worstTensorError(cpu.params, initial);
  t.true(moved.err > 10 * TOL, `training barely moved the adapter (${moved.err})`);

  const params = worstTensorError(gpu.params, cpu.params);
  const state = worstTensorError(gpu.state, cpu.state);
  t.log(
    `worst relative difference: LoRA tensors ${params.err.toExponential(2)} (${params.name}), with Adam moments ${state.err.toExponential(2)} (${state.name})`,
  );
  t.is(gpu.params.size, loraTensorSpecs(model, lora).length);
  t.true(params.err < TOL, `LoRA tensor ${params.name} differs by ${params.err.toExponential(2)} relative`);
  t.true(state.err < TOL, `state tensor ${state.name} differs by ${state.err.toExponential(2)} relative`);
}

const gpuTest = webgpuUnavailable && !webgpuRequired ? test.serial.skip : test.serial;

if (webgpuUnavailable) {
  test(webgpuRequired ? 'WebGPU is available (FEDIT_REQUIRE_WEBGPU=1)' : 'WebGPU checks are skipped', (t) => {
    if (webgpuRequired) t.fail(`FEDIT_REQUIRE_WEBGPU=1 but ${webgpuUnavailable}`);
    else t.log(`skipped: ${webgpuUnavailable}`);
    t.pass();
  });
}

gpuTest(
  `train_step on WebGPU matches the CPU over ${STEPS} steps (losses, LoRA tensors, Adam moments)`,
  async (t) => {
    const cpu = await train('cpu', 1, STEPS);
    const gpu = await train('webgpu', 1, STEPS);
    compare(t, gpu, cpu, initialLora());
  },
);

gpuTest('gradient accumulation (grad_step + apply_step) on WebGPU matches the CPU', async (t) => {
  const cpu = await train('cpu', 2, 3);
  const gpu = await train('webgpu', 2, 3);
  compare(t, gpu, cpu, initialLora());
});

gpuTest('FFA-LoRA, FedProx and SCAFFOLD on WebGPU match the CPU, fused and accumulated', async (t) => {
  const rnd = normalSampler(8);
  const correction = new Map(
    loraTensorSpecs(model, lora)
      .filter((s) => s.which === 'B')
      .map((s) => [s.name, Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * 0.01)]),
  );
  const extra = { freezeLoraA: true, proximal: { mu: 0.5 }, gradientCorrection: correction };
  for (const microBatches of [1, 2]) {
    const cpu = await train('cpu', microBatches, 3, extra);
    const gpu = await train('webgpu', microBatches, 3, extra);
    // The frozen A factors are copied into device buffers once, like the anchors and corrections.
    compare(t, gpu, cpu, initialLora());
    for (const [name, v] of initialLora())
      if (name.includes('lora_A')) t.deepEqual(Array.from(gpu.params.get(name)!), Array.from(v), name);
  }
});

gpuTest(
  'FFA-LoRA + FedProx on WebGPU: state imported into a trainer continues as an uninterrupted run, all on the GPU',
  async (t) => {
    const options: TrainerOptions = {
      model,
      weights,
      lora,
      batch: BATCH,
      seq: SEQ,
      optimizer: { ...DEFAULT_ADAMW },
      seed: 0,
      provider: 'webgpu',
      initial: initialLora(),
      forbidCpuFallback: true,
      freezeLoraA: true,
      proximal: { mu: 0.5 },
    };
    const batches = [0, 1, 2, 3].map((s) => rowsFor(2000 + s, BATCH));
    const straight = await Trainer.create(options);
    for (const b of batches) await straight.trainStep([b], LR);
    const first = await Trainer.create(options);
    for (const b of batches.slice(0, 2)) await first.trainStep([b], LR);
    const saved = await first.exportState();
    await first.release();
    const resumed = await Trainer.create(options);
    await resumed.trainStep([batches[3]], LR); // pins the fixed tensors; the import must pin A again
    resumed.importState(saved); // the frozen A factors come back as host tensors
    for (const b of batches.slice(2)) await resumed.trainStep([b], LR);
    const locations = new Set(
      [...(resumed as unknown as { state: Map<string, ort.Tensor> }).state.values()].map((x) => x.location),
    );
    t.deepEqual([...locations], ['gpu-buffer']);
    const a = await straight.parameters();
    const b = await resumed.parameters();
    await straight.release();
    await resumed.release();
    const worst = worstTensorError(b, a);
    t.true(worst.err < TOL, `${worst.name} differs by ${worst.err.toExponential(2)} relative`);
    for (const [name, v] of initialLora())
      if (name.includes('lora_A')) t.deepEqual(Array.from(b.get(name)!), Array.from(v), name);
  },
);

/** Model variants beyond the tiny preset, each with its own checkpoint: every graph kind must compile. */
const variants: { title: string; model: LlamaConfig; lora: LoraConfig }[] = [
  { title: 'tiny (GQA 4:2, tied head), LoRA q/v', model, lora },
  {
    title: 'multi-head, untied head, all seven targets',
    model: { ...model, numKvHeads: 4, tieWordEmbeddings: false },
    lora: { rank: 3, alpha: 16, dropout: 0, targets: [...LORA_TARGETS] },
  },
  {
    title: 'Qwen2-style q/k/v bias, GQA 4:1, all seven targets',
    model: { ...model, modelType: 'qwen2', numKvHeads: 1, qkvBias: true, ropeTheta: 1e6, rmsNormEps: 1e-6 },
    lora: { rank: 8, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
  },
];

gpuTest('every step graph runs on WebGPU without CPU fallback, for several model variants', async (t) => {
  const kinds: StepKind[] = ['train_step', 'grad_step', 'apply_step', 'eval_step'];
  for (const [i, v] of variants.entries()) {
    const vdir = join(dir, `variant-${i}`);
    await writeHfCheckpoint(join(vdir, 'model'), v.model, randomLlamaTensors(v.model, 20 + i, 0.1));
    const { store } = await loadCheckpoint(join(vdir, 'model'), { cacheDir: join(vdir, 'cache') });
    for (const kind of kinds) {
      const graph = buildStepGraph(kind, {
        model: v.model,
        weights: store,
        lora: v.lora,
        batch: BATCH,
        seq: SEQ,
        optimizer: DEFAULT_ADAMW,
        seed: 0,
      });
      const session = await createSession(graph, {
        provider: 'webgpu',
        modelDir: store.dir,
        forbidCpuFallback: true,
      }).catch((err: Error) => {
        throw new Error(`${v.title}: ${kind}: ${err.message}`, { cause: err });
      });
      await session.release();
    }
    t.log(`${v.title}: ${kinds.join(', ')} compile for WebGPU alone`);
  }
  t.pass();
});

// ONNX Dropout has no WebGPU kernel, nor does any random-number op; LoRA dropout draws its masks from
// a hash of ops every provider runs (model/dropout.ts).
(webgpuUnavailable ? test.serial.skip : test.serial)(
  'LoRA dropout runs on WebGPU without CPU fallback',
  async (t) => {
    const graph = buildStepGraph('train_step', {
      model,
      weights,
      lora: { ...lora, dropout: 0.1 },
      batch: BATCH,
      seq: SEQ,
      optimizer: DEFAULT_ADAMW,
      seed: 0,
    });
    const session = await createSession(graph, {
      provider: 'webgpu',
      modelDir: weights.dir,
      forbidCpuFallback: true,
    });
    await session.release();
    t.pass();
  },
);

test.serial('a provider that cannot start falls back to the CPU with a warning', async (t) => {
  // CUDA needs an install-time download (ONNXRUNTIME_NODE_INSTALL=cuda12) and a GPU; where both are
  // there, this check has nothing to check.
  const probe = new Graph('cuda_probe');
  const x = probe.input('x', 'float32', [1]);
  probe.output(add(x, x), 'y');
  const cudaWorks = await createSession(probe, { provider: 'cuda' }).then(
    async (s) => (await s.release(), true),
    () => false,
  );
  if (cudaWorks) {
    t.log('the CUDA execution provider works here: nothing to fall back from');
    t.pass();
    return;
  }
  const warnings: string[] = [];
  const trainer = await Trainer.create({
    model,
    weights,
    lora,
    batch: BATCH,
    seq: SEQ,
    optimizer: { ...DEFAULT_ADAMW },
    seed: 0,
    provider: 'cuda',
    onWarning: (m) => warnings.push(m),
  });
  try {
    t.is(trainer.provider, 'cpu');
    t.is(warnings.length, 1, `warnings: ${JSON.stringify(warnings)}`);
    t.regex(warnings[0], /'cuda'/);
    t.regex(warnings[0], /CPU/);
    const r = await trainer.trainStep([rowsFor(3, BATCH)], LR);
    t.true(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
  } finally {
    await trainer.release();
  }

  // With fallback forbidden, the same request is an error instead.
  await t.throwsAsync(
    Trainer.create({
      model,
      weights,
      lora,
      batch: BATCH,
      seq: SEQ,
      optimizer: { ...DEFAULT_ADAMW },
      seed: 0,
      provider: 'cuda',
      forbidCpuFallback: true,
    }),
    { message: /cuda/ },
  );
});
