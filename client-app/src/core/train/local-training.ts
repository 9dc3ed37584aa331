// Local, non-federated LoRA training: a participant's data file and a base model in, a PEFT adapter
// out (`fedit train` and the desktop app). It validates the data before any training, loads the
// model and tokens, trains with trainLora (train-lora.ts: sequence buckets, held-out evaluation,
// checkpoints so that a crash or Ctrl-C resumes where it stopped) and writes the adapter, with its
// loss history as trainer_state.json (trainer-state.ts).

import { rmSync } from 'node:fs';
import { loadCheckpoint as loadModel, loadTokenizer } from '@fedit/kernels';
import { checkAdapterTarget, writeAdapter } from '@fedit/shared';
import {
  prepareDataset,
  type DatasetFormat,
  type DatasetReport,
  type PromptTemplate,
} from '../data/index.ts';
import { dataFilesDigest } from './checkpoint.ts';
import { checkRunSettings, trainLora, type LoraRunSettings, type TrainingEvent } from './train-lora.ts';
import { TrainingHistory } from './trainer-state.ts';

export {
  TrainingSetupError,
  checkRunSettings,
  evaluateRows,
  trainLora,
  type LoraRunInputs,
  type LoraRunResult,
  type LoraRunSettings,
  type TrainingEvent,
} from './train-lora.ts';

export interface LocalTrainingOptions extends LoraRunSettings {
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
  template: PromptTemplate;
  trainOnInputs?: boolean;
  /** Fraction of conversations held out for evaluation (0 = none). */
  heldOutFraction?: number;
}

export interface LocalTrainingResult {
  completed: boolean;
  steps: number;
  adapterDir?: string;
  report: DatasetReport;
  evalLoss?: number;
  losses: number[];
}

/** The options that name this run's inputs and output, beside the training settings. */
function runKey(o: LocalTrainingOptions): string {
  const { modelDir, dataFiles, format, adapterOut, template, trainOnInputs, heldOutFraction } = o;
  const own = { modelDir, dataFiles, format, adapterOut, template, trainOnInputs, heldOutFraction };
  return `${dataFilesDigest(o.dataFiles)}|${JSON.stringify(own)}`;
}

export async function runLocalTraining(o: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const emit = (e: TrainingEvent) => o.onEvent?.(e);
  checkRunSettings(o);
  // The adapter is written only at the end, so a place it cannot go (a file, a folder holding
  // anything but an earlier adapter) must fail now, not after the whole run.
  await checkAdapterTarget(o.adapterOut, { overwrite: true });

  const seed = o.seed ?? 42;
  const model = await loadModel(o.modelDir);
  const tokenizer = await loadTokenizer(o.modelDir);
  const prepared = await prepareDataset(
    o.dataFiles.map((file) => (o.format ? { path: file, format: o.format } : file)),
    {
      heldOut: o.heldOutFraction ? { fraction: o.heldOutFraction, seed } : undefined,
      tokens: { tokenizer, template: o.template, cutoffLen: o.cutoffLen, trainOnInputs: o.trainOnInputs },
      batching: { batchSize: o.batchSize, seed: `${seed}:0`, pack: o.pack },
    },
  );
  emit({ type: 'report', report: prepared.report });
  const checkpointDir = o.checkpointDir ?? `${o.adapterOut.replace(/[\\/]+$/, '')}.checkpoint`;
  const {
    adapterOut,
    modelDir,
    dataFiles: _d,
    format: _f,
    template,
    trainOnInputs: _i,
    heldOutFraction: _h,
    checkpointDir: _c,
    ...settings
  } = o;
  const history = new TrainingHistory(checkpointDir, o);
  const onEvent = (e: TrainingEvent) => {
    history.observe(e);
    emit(e);
  };
  const result = await trainLora(
    { model, rows: prepared.rows!, checkpointDir, runKey: runKey(o) },
    { ...settings, onEvent },
  );
  if (!result.completed)
    return { completed: false, steps: result.steps, report: prepared.report, losses: result.losses };
  await writeAdapter(
    adapterOut,
    {
      config: {
        rank: o.lora.rank,
        alpha: o.lora.alpha,
        dropout: o.lora.dropout,
        targetModules: [...o.lora.targets],
        baseModelNameOrPath: modelDir,
      },
      tensors: result.tensors!,
      metadata: {
        baseModelIdentity: model.identity,
        extra: { template, steps: String(result.steps) },
      },
    },
    { overwrite: true, trainerState: JSON.stringify(history.trainerState(), null, 2) + '\n' },
  );
  rmSync(checkpointDir, { recursive: true, force: true });
  emit({ type: 'done', adapterDir: adapterOut, steps: result.steps, evalLoss: result.evalLoss });
  return {
    completed: true,
    steps: result.steps,
    adapterDir: adapterOut,
    report: prepared.report,
    evalLoss: result.evalLoss,
    losses: result.losses,
  };
}
