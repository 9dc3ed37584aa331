// Local, non-federated LoRA training: a participant's data file and a base model in, a PEFT adapter
// out. The same loop serves `fedit train` and the desktop app (and, with a global adapter as the
// starting point, one federated round). It validates the data before any training, trains in
// sequence buckets, evaluates on a held-out split, and checkpoints so that a crash or Ctrl-C resumes
// where it stopped.

import { createHash } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import {
  DEFAULT_ADAMW,
  Trainer,
  learningRate,
  loadCheckpoint as loadModel,
  loadTokenizer,
  validateLoraConfig,
  validateSchedule,
  type ExecutionProvider,
  type LoadedModel,
  type LoraConfig,
  type ScheduleKind,
  type Tokenizer,
  type TokenRow,
} from '@fedit/kernels';
import { FeditError, checkAdapterTarget, writeAdapter } from '@fedit/shared';
import {
  planBatches,
  prepareDataset,
  sequenceBuckets,
  type DatasetFormat,
  type DatasetReport,
  type PromptTemplate,
} from '../data/index.ts';
import { loadRunCheckpoint, saveRunCheckpoint } from './checkpoint.ts';

export interface LocalTrainingOptions {
  modelDir: string;
  dataFiles: string[];
  /** Dataset format for every file; default: detected per file. */
  format?: DatasetFormat;
  /**
   * Where the PEFT adapter is written at the end: a new or empty folder, or one holding only an
   * earlier adapter, which is replaced. Any other folder is refused before training starts.
   */
  adapterOut: string;
  /** Resumable state while training runs; default `<adapterOut>.checkpoint`, removed when done. */
  checkpointDir?: string;
  lora: LoraConfig;
  template: PromptTemplate;
  cutoffLen: number;
  trainOnInputs?: boolean;
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
  /** Fraction of conversations held out for evaluation (0 = none). */
  heldOutFraction?: number;
  /** Evaluate every this many steps (0 = only at the end). */
  evalEvery?: number;
  checkpointEvery?: number;
  pack?: boolean;
  seed?: number;
  provider?: ExecutionProvider;
  threads?: number;
  /** Start from these LoRA tensors (a global adapter) instead of PEFT's initialisation. */
  initialAdapter?: ReadonlyMap<string, Float32Array>;
  /** Discard a checkpoint of another run in checkpointDir instead of refusing to start. */
  restart?: boolean;
  /** Aborting saves a checkpoint and stops after the current step. */
  signal?: AbortSignal;
  onEvent?: (event: TrainingEvent) => void;
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

export interface LocalTrainingResult {
  completed: boolean;
  steps: number;
  adapterDir?: string;
  report: DatasetReport;
  evalLoss?: number;
  losses: number[];
}

export class TrainingSetupError extends FeditError {
  constructor(message: string) {
    super('TRAINING_SETUP', message);
  }
}

/** Identity of a run: a checkpoint resumes only the same model, data and settings. */
function runIdentity(model: LoadedModel, o: LocalTrainingOptions): string {
  const h = createHash('sha256');
  h.update(`fedit-run-v1|${model.identity}|`);
  for (const f of o.dataFiles) h.update(`${f}|${statSync(f).size}|`).update(readFileSync(f));
  const {
    signal: _s,
    onEvent: _e,
    initialAdapter,
    restart: _r,
    checkpointDir: _c,
    threads: _t,
    provider: _p,
    ...settings
  } = o;
  h.update(JSON.stringify(settings));
  if (initialAdapter)
    for (const [name, v] of [...initialAdapter].sort())
      h.update(name).update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return `sha256:${h.digest('hex')}`;
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

export async function runLocalTraining(o: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const emit = (e: TrainingEvent) => o.onEvent?.(e);
  validateLoraConfig(o.lora);
  const seed = o.seed ?? 42;
  const k = o.microBatches ?? 1;
  if (!(Number.isInteger(o.batchSize) && o.batchSize > 0))
    throw new TrainingSetupError(`batch size must be a positive whole number, got ${o.batchSize}`);
  if (!(Number.isInteger(k) && k > 0))
    throw new TrainingSetupError(`micro-batches must be a positive whole number, got ${k}`);
  if (!(o.epochs > 0) && !o.maxSteps) throw new TrainingSetupError('give epochs > 0 or max steps');
  // The adapter is written only at the end, so a place it cannot go (a file, a folder holding
  // anything but an earlier adapter) must fail now, not after the whole run.
  await checkAdapterTarget(o.adapterOut, { overwrite: true });

  const model = await loadModel(o.modelDir);
  const tokenizer: Tokenizer = await loadTokenizer(o.modelDir);
  const buckets = sequenceBuckets(o.cutoffLen);
  const prepared = await prepareDataset(
    o.dataFiles.map((file) => (o.format ? { path: file, format: o.format } : file)),
    {
      heldOut: o.heldOutFraction ? { fraction: o.heldOutFraction, seed } : undefined,
      tokens: { tokenizer, template: o.template, cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs },
      batching: { batchSize: o.batchSize, seed: `${seed}:0`, buckets, pack: o.pack },
    },
  );
  emit({ type: 'report', report: prepared.report });
  const trainRows = prepared.rows!.train;
  if (trainRows.length === 0)
    throw new TrainingSetupError('no usable training examples in the data (see the report above)');
  const plan = (epoch: number) =>
    epoch === 0
      ? prepared.batches!
      : planBatches(trainRows, { batchSize: o.batchSize, seed: `${seed}:${epoch}`, buckets, pack: o.pack });
  const stepsPerEpoch = Math.floor(prepared.batches!.batches.length / k);
  if (stepsPerEpoch === 0) {
    throw new TrainingSetupError(
      `${prepared.batches!.batches.length} batches of ${o.batchSize} are fewer than the ${k} micro-batches of one step: lower --batch-size or --grad-accum`,
    );
  }
  const totalSteps = o.maxSteps ?? Math.ceil(o.epochs * stepsPerEpoch);
  const schedule = validateSchedule({
    kind: o.schedule ?? 'linear',
    lr: o.lr,
    warmupSteps: o.warmupSteps ?? 0,
    totalSteps,
  });

  const trainer = await Trainer.create({
    model: model.config,
    weights: model.store,
    lora: o.lora,
    batch: o.batchSize,
    seq: Math.max(...buckets),
    seqBuckets: buckets,
    microBatches: k,
    optimizer: {
      ...DEFAULT_ADAMW,
      weightDecay: o.weightDecay ?? DEFAULT_ADAMW.weightDecay,
      maxGradNorm: o.maxGradNorm ?? DEFAULT_ADAMW.maxGradNorm,
    },
    seed,
    provider: o.provider,
    threads: o.threads,
    initial: o.initialAdapter,
    onWarning: (message) => emit({ type: 'warning', message }),
  });
  emit({ type: 'ready', provider: trainer.provider, totalSteps, stepsPerEpoch, buckets });

  const checkpointDir = o.checkpointDir ?? `${o.adapterOut.replace(/[\\/]+$/, '')}.checkpoint`;
  const runId = runIdentity(model, o);
  if (o.restart) rmSync(checkpointDir, { recursive: true, force: true });
  const saved = await loadRunCheckpoint(checkpointDir, runId);
  let tokensSeen = 0;
  if (saved) {
    trainer.importState(saved.state);
    tokensSeen = saved.progress.tokens;
    emit({ type: 'resumed', step: saved.state.step });
  }

  const losses: number[] = [];
  const started = performance.now();
  const startStep = trainer.step;
  let tokensThisSession = 0;
  let evalLoss: number | undefined;
  let batches = plan(Math.floor(startStep / stepsPerEpoch)).batches;
  const checkpoint = async () => {
    await saveRunCheckpoint(checkpointDir, await trainer.exportState(), {
      runId,
      step: trainer.step,
      totalSteps,
      tokens: tokensSeen,
      lastLoss: losses.at(-1),
    });
    emit({ type: 'checkpoint', step: trainer.step, dir: checkpointDir });
  };
  const evaluate = async () => {
    if (prepared.rows!.heldOut.length === 0) return;
    const r = await evaluateRows(trainer, prepared.rows!.heldOut, o.batchSize);
    evalLoss = r.loss;
    emit({ type: 'eval', step: trainer.step, ...r });
  };

  try {
    for (let s = startStep; s < totalSteps; s++) {
      const epoch = Math.floor(s / stepsPerEpoch);
      const inEpoch = s % stepsPerEpoch;
      if (inEpoch === 0 && s !== startStep) batches = plan(epoch).batches;
      const group = batches.slice(inEpoch * k, inEpoch * k + k).map((b) => b.rows);
      const lr = learningRate(schedule, s);
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
      const done = s + 1 - startStep;
      emit({
        type: 'step',
        step: s + 1,
        totalSteps,
        epoch,
        loss: r.loss,
        gradNorm: r.gradNorm,
        lr,
        tokensPerSecond: tokensThisSession / elapsed,
        etaSeconds: (elapsed / done) * (totalSteps - s - 1),
      });
      if (o.evalEvery && (s + 1) % o.evalEvery === 0 && s + 1 < totalSteps) await evaluate();
      if (o.signal?.aborted) {
        await checkpoint();
        emit({ type: 'stopped', step: trainer.step, checkpointDir });
        return { completed: false, steps: trainer.step, report: prepared.report, losses };
      }
      if (o.checkpointEvery && (s + 1) % o.checkpointEvery === 0 && s + 1 < totalSteps) await checkpoint();
    }
    await evaluate();
    const tensors = (await trainer.parameters()) as Map<string, Float32Array>;
    await writeAdapter(
      o.adapterOut,
      {
        config: {
          rank: o.lora.rank,
          alpha: o.lora.alpha,
          dropout: o.lora.dropout,
          targetModules: [...o.lora.targets],
          baseModelNameOrPath: o.modelDir,
        },
        tensors,
        metadata: {
          baseModelIdentity: model.identity,
          extra: { template: o.template, steps: String(trainer.step) },
        },
      },
      { overwrite: true },
    );
    rmSync(checkpointDir, { recursive: true, force: true });
    emit({ type: 'done', adapterDir: o.adapterOut, steps: trainer.step, evalLoss });
    return {
      completed: true,
      steps: trainer.step,
      adapterDir: o.adapterOut,
      report: prepared.report,
      evalLoss,
      losses,
    };
  } finally {
    await trainer.release();
  }
}
