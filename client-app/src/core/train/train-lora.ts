// The LoRA training loop over token rows already in memory: plan the steps, create the trainer (or
// reset the one a session keeps, TrainerKeeper), resume from a checkpoint of the same run, step, evaluate, checkpoint, and hand back the trained
// tensors. It opens no file but its checkpoint: `fedit train` (runLocalTraining) loads the model and
// data and writes the adapter around it; a federated round (core/federation/round.ts) trains from
// the model and rows its session loaded once, and hands the tensors straight to its update.

import { rmSync } from 'node:fs';
import {
  DEFAULT_ADAMW,
  Trainer,
  learningRate,
  validateLoraConfig,
  validateSchedule,
  type ExecutionProvider,
  type LoadedModel,
  type LoraConfig,
  type ScheduleKind,
  type TokenRow,
  type TrainerOptions,
} from '@fedit/kernels';
import { FeditError } from '@fedit/shared';
import { planBatches, sequenceBuckets, type Batch, type DatasetReport } from '../data/index.ts';
import { loadRunCheckpoint, runIdentity, saveRunCheckpoint } from './checkpoint.ts';

/** How to train: everything but the model and the rows. */
export interface LoraRunSettings {
  lora: LoraConfig;
  cutoffLen: number;
  /** Rows per micro-batch, and micro-batches per optimizer step (gradient accumulation). */
  batchSize: number;
  microBatches?: number;
  epochs: number;
  /** Stop after this many optimizer steps (overrides epochs). */
  maxSteps?: number;
  lr: number;
  schedule?: ScheduleKind;
  warmupSteps?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  /** Evaluate every this many steps (0 = only at the end). */
  evalEvery?: number;
  checkpointEvery?: number;
  pack?: boolean;
  seed?: number;
  provider?: ExecutionProvider;
  threads?: number;
  /** Start from these LoRA tensors (a global adapter) instead of PEFT's initialisation. */
  initialAdapter?: ReadonlyMap<string, Float32Array>;
  /** FFA-LoRA: train only the lora_B tensors; every lora_A keeps its starting value bit for bit. */
  freezeLoraA?: boolean;
  /**
   * FedProx: mu of the proximal term mu/2 ||theta - theta_start||^2 added to the loss's gradient,
   * anchored at the starting adapter (`initialAdapter`: the round's global adapter). 0 or absent: off.
   */
  proximalMu?: number;
  /**
   * SCAFFOLD: the correction c - c_i, applied to each step after AdamW (the kernels' stepCorrection:
   * every trained tensor, nothing else). Absent: off.
   */
  scaffoldCorrection?: ReadonlyMap<string, Float32Array>;
  /** Discard a checkpoint of another run in the checkpoint folder instead of refusing to start. */
  restart?: boolean;
  /** Aborting saves a checkpoint and stops after the current step. */
  signal?: AbortSignal;
  onEvent?: (event: TrainingEvent) => void;
}

/** What the loop trains on, loaded by the caller (once, for a participant's whole session). */
export interface LoraRunInputs {
  model: LoadedModel;
  rows: { train: readonly TokenRow[]; heldOut: readonly TokenRow[] };
  /** Resumable state while training runs (removed by the caller once the result is kept). */
  checkpointDir: string;
  /**
   * What else makes this run this run (the data's digest, the caller's settings): with the model,
   * the settings and the initial adapter, it decides whether a checkpoint may be resumed.
   */
  runKey: string;
  /**
   * Keeps the trainer (its compiled graphs) for the session's next runs; absent, this run creates
   * its own and releases it when it ends.
   */
  trainers?: TrainerKeeper;
}

/**
 * One Trainer kept across the runs of a session (a participant's rounds). A run whose options
 * compile the same graphs resets it (Trainer.reset: the state create would give, bit for bit)
 * instead of creating another, which costs ONNX sessions (~400 ms on the demo model) and a compile
 * per sequence bucket (~100 ms each); other options release it and create a new one. Whoever
 * holds the keeper calls release() when the session ends.
 */
export class TrainerKeeper {
  #trainer: Trainer | undefined;

  /** `create` is Trainer.create unless a host wraps it (a test counts the trainers created). */
  constructor(
    private readonly create: (options: TrainerOptions) => Promise<Trainer> = (o) => Trainer.create(o),
  ) {}

  /** A trainer in the state Trainer.create(options) gives: the kept one reset, or a new one. */
  async acquire(options: TrainerOptions): Promise<Trainer> {
    if (this.#trainer?.compilesSameAs(options)) {
      this.#trainer.reset(options);
      return this.#trainer;
    }
    await this.release();
    this.#trainer = await this.create(options);
    return this.#trainer;
  }

  async release(): Promise<void> {
    const trainer = this.#trainer;
    this.#trainer = undefined;
    await trainer?.release();
  }
}

export type TrainingEvent =
  | { type: 'report'; report: DatasetReport }
  | {
      type: 'ready';
      provider: ExecutionProvider;
      totalSteps: number;
      stepsPerEpoch: number;
      buckets: number[];
    }
  | { type: 'resumed'; step: number }
  | { type: 'warning'; message: string }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      epoch: number;
      loss: number;
      gradNorm: number;
      lr: number;
      tokensPerSecond: number;
      etaSeconds: number;
    }
  | { type: 'eval'; step: number; loss: number; perplexity: number; tokens: number }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'stopped'; step: number; checkpointDir: string }
  | { type: 'done'; adapterDir: string; steps: number; evalLoss?: number };

export interface LoraRunResult {
  /** False when `signal` stopped the run (a checkpoint was saved). */
  completed: boolean;
  steps: number;
  /** The trained LoRA tensors, when completed. */
  tensors?: Map<string, Float32Array>;
  evalLoss?: number;
  losses: number[];
}

export class TrainingSetupError extends FeditError {
  constructor(message: string) {
    super('TRAINING_SETUP', message);
  }
}

/** Refuses settings that cannot make a single step, before anything is loaded. */
export function checkRunSettings(o: LoraRunSettings): void {
  validateLoraConfig(o.lora);
  const k = o.microBatches ?? 1;
  if (!(Number.isInteger(o.batchSize) && o.batchSize > 0))
    throw new TrainingSetupError(`batch size must be a positive whole number, got ${o.batchSize}`);
  if (!(Number.isInteger(k) && k > 0))
    throw new TrainingSetupError(`micro-batches must be a positive whole number, got ${k}`);
  if (!(o.epochs > 0) && !o.maxSteps) throw new TrainingSetupError('give epochs > 0 or max steps');
  if (o.proximalMu !== undefined && !(Number.isFinite(o.proximalMu) && o.proximalMu >= 0))
    throw new TrainingSetupError(`proximal mu must be a finite number >= 0, got ${o.proximalMu}`);
}

/** Mean loss of `rows` in batches of `batchSize`. */
export async function evaluateRows(trainer: Trainer, rows: readonly TokenRow[], batchSize: number) {
  let lossSum = 0;
  let tokens = 0;
  const sorted = [...rows].sort((a, b) => a.inputIds.length - b.inputIds.length); // similar lengths share a bucket
  for (let i = 0; i < sorted.length; i += batchSize) {
    const r = await trainer.evaluate(sorted.slice(i, i + batchSize));
    lossSum += r.lossSum;
    tokens += r.tokens;
  }
  const loss = tokens > 0 ? lossSum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens };
}

/** The run's shape: sequence buckets, each epoch's batches, steps, and the learning-rate schedule. */
function planRun(rows: readonly TokenRow[], o: LoraRunSettings) {
  const seed = o.seed ?? 42;
  const k = o.microBatches ?? 1;
  const buckets = sequenceBuckets(o.cutoffLen);
  // Epoch e's order depends on the seed and e only, so a resumed run sees the batches it would have.
  const plan = (epoch: number): Batch[] =>
    planBatches(rows, { batchSize: o.batchSize, seed: `${seed}:${epoch}`, buckets, pack: o.pack }).batches;
  const first = plan(0);
  const stepsPerEpoch = Math.floor(first.length / k);
  if (stepsPerEpoch === 0) {
    throw new TrainingSetupError(
      `${first.length} batches of ${o.batchSize} are fewer than the ${k} micro-batches of one step: lower --batch-size or --grad-accum`,
    );
  }
  const totalSteps = o.maxSteps ?? Math.ceil(o.epochs * stepsPerEpoch);
  const schedule = validateSchedule({
    kind: o.schedule ?? 'linear',
    lr: o.lr,
    warmupSteps: o.warmupSteps ?? 0,
    totalSteps,
  });
  return { seed, k, buckets, plan, first, stepsPerEpoch, totalSteps, schedule };
}

function trainerOptions(
  model: LoadedModel,
  o: LoraRunSettings,
  run: ReturnType<typeof planRun>,
): TrainerOptions {
  return {
    model: model.config,
    weights: model.store,
    lora: o.lora,
    batch: o.batchSize,
    seq: Math.max(...run.buckets),
    seqBuckets: run.buckets,
    microBatches: run.k,
    optimizer: {
      ...DEFAULT_ADAMW,
      weightDecay: o.weightDecay ?? DEFAULT_ADAMW.weightDecay,
      maxGradNorm: o.maxGradNorm ?? DEFAULT_ADAMW.maxGradNorm,
    },
    seed: run.seed,
    provider: o.provider,
    threads: o.threads,
    initial: o.initialAdapter,
    freezeLoraA: o.freezeLoraA,
    // The anchor is left to the Trainer: the values training starts from, i.e. initialAdapter.
    proximal: o.proximalMu ? { mu: o.proximalMu } : undefined,
    stepCorrection: o.scaffoldCorrection,
    onWarning: (message) => o.onEvent?.({ type: 'warning', message }),
  };
}

/** Resumes `trainer` from a checkpoint of run `runId`, if there is one; the tokens it had seen. */
async function resume(trainer: Trainer, checkpointDir: string, runId: string, o: LoraRunSettings) {
  if (o.restart) rmSync(checkpointDir, { recursive: true, force: true });
  const saved = await loadRunCheckpoint(checkpointDir, runId);
  if (!saved) return 0;
  trainer.importState(saved.state);
  o.onEvent?.({ type: 'resumed', step: saved.state.step });
  return saved.progress.tokens;
}

/** Trains LoRA tensors on `inputs.rows`; resumes a checkpoint of the same run in `checkpointDir`. */
export async function trainLora(inputs: LoraRunInputs, o: LoraRunSettings): Promise<LoraRunResult> {
  const emit = (e: TrainingEvent) => o.onEvent?.(e);
  checkRunSettings(o);
  const { model, rows, checkpointDir } = inputs;
  if (rows.train.length === 0)
    throw new TrainingSetupError('no usable training examples in the data (see the report above)');
  const run = planRun(rows.train, o);
  const { k, stepsPerEpoch, totalSteps } = run;
  const options = trainerOptions(model, o, run);
  const trainer = inputs.trainers ? await inputs.trainers.acquire(options) : await Trainer.create(options);
  emit({ type: 'ready', provider: trainer.provider, totalSteps, stepsPerEpoch, buckets: run.buckets });
  try {
    // Off is off however it is said: false and 0 name the same run as absent (older checkpoints resume).
    const identity: LoraRunSettings = {
      ...o,
      freezeLoraA: o.freezeLoraA || undefined,
      proximalMu: o.proximalMu || undefined,
    };
    const runId = runIdentity(model.identity, inputs.runKey, identity);
    let tokensSeen = await resume(trainer, checkpointDir, runId, o);
    const losses: number[] = [];
    const started = performance.now();
    const startStep = trainer.step;
    let tokensThisSession = 0;
    let evalLoss: number | undefined;
    const startEpoch = Math.floor(startStep / stepsPerEpoch);
    let batches = startEpoch === 0 ? run.first : run.plan(startEpoch);
    const checkpoint = async () => {
      const state = await trainer.exportState();
      const progress = { runId, step: trainer.step, totalSteps, tokens: tokensSeen, lastLoss: losses.at(-1) };
      await saveRunCheckpoint(checkpointDir, state, progress);
      emit({ type: 'checkpoint', step: trainer.step, dir: checkpointDir });
    };
    const evaluate = async () => {
      if (rows.heldOut.length === 0) return;
      const r = await evaluateRows(trainer, rows.heldOut, o.batchSize);
      evalLoss = r.loss;
      emit({ type: 'eval', step: trainer.step, ...r });
    };
    for (let s = startStep; s < totalSteps; s++) {
      const epoch = Math.floor(s / stepsPerEpoch);
      const inEpoch = s % stepsPerEpoch;
      if (inEpoch === 0 && s !== startStep) batches = run.plan(epoch);
      const group = batches.slice(inEpoch * k, inEpoch * k + k).map((b) => b.rows);
      const lr = learningRate(run.schedule, s);
      const r = await trainer.trainStep(group, lr);
      if (!Number.isFinite(r.loss))
        throw new FeditError(
          'TRAINING_DIVERGED',
          `the loss became ${r.loss} at step ${s + 1}; lower the learning rate`,
        );
      losses.push(r.loss);
      tokensSeen += r.tokens;
      tokensThisSession += group.flat().reduce((n, row) => n + row.inputIds.length, 0);
      const elapsed = (performance.now() - started) / 1000;
      const etaSeconds = (elapsed / (s + 1 - startStep)) * (totalSteps - s - 1);
      const tokensPerSecond = tokensThisSession / elapsed;
      emit({
        type: 'step',
        step: s + 1,
        totalSteps,
        epoch,
        loss: r.loss,
        gradNorm: r.gradNorm,
        lr,
        tokensPerSecond,
        etaSeconds,
      });
      if (o.evalEvery && (s + 1) % o.evalEvery === 0 && s + 1 < totalSteps) await evaluate();
      if (o.signal?.aborted) {
        await checkpoint();
        emit({ type: 'stopped', step: trainer.step, checkpointDir });
        return { completed: false, steps: trainer.step, losses };
      }
      if (o.checkpointEvery && (s + 1) % o.checkpointEvery === 0 && s + 1 < totalSteps) await checkpoint();
    }
    await evaluate();
    const tensors = (await trainer.parameters()) as Map<string, Float32Array>;
    return { completed: true, steps: trainer.step, tensors, evalLoss, losses };
  } finally {
    if (!inputs.trainers) await trainer.release(); // a kept trainer is the keeper's to release
  }
}
