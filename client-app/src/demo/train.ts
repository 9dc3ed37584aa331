// One participant's local LoRA training on demo records, through the ordinary local training loop
// (runLocalTraining): the records are written as a Dolly JSONL file, trained with the demo's
// settings from a starting adapter (the global one) or from PEFT's initialisation, and the adapter
// comes back as tensors.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoraConfig } from '@fedit/kernels';
import { readAdapter, tensorToF32 } from '@fedit/shared';
import { runLocalTraining, type LocalTrainingOptions } from '../core/train/local-training.ts';
import { toJsonl, type InstructionRecord } from './tasks.ts';

/** The LoRA settings of the demo federation. */
export const DEMO_LORA: LoraConfig = {
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

/** Local training settings of one participant in one round of the demo. */
export interface DemoTrainingSettings {
  lora: LoraConfig;
  /** Optimizer steps per round (each participant, each round). */
  steps: number;
  batchSize: number;
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  cutoffLen: number;
}

export const DEMO_TRAINING: DemoTrainingSettings = {
  lora: DEMO_LORA,
  // Ten steps a round over 24 rounds learns far better than 30 over 8 for the same compute: local
  // training on two categories drifts from the others between averages (docs/learning.md).
  steps: 10,
  batchSize: 8,
  lr: 2e-3,
  // What a federation participant trains with (its schedule is constant within a round).
  schedule: 'constant',
  cutoffLen: 64,
};

export interface TrainDemoAdapterOptions {
  modelDir: string;
  records: readonly InstructionRecord[];
  /** Start from this adapter (the global one); default: PEFT's initialisation from `seed`. */
  initial?: ReadonlyMap<string, Float32Array>;
  settings?: Partial<DemoTrainingSettings>;
  seed?: number;
  threads?: number;
  /** Where the data file and adapter go (default: a temporary folder, removed afterwards). */
  workDir?: string;
}

export interface DemoAdapterResult {
  tensors: Map<string, Float32Array>;
  /** Training examples (the FedAvg weight). */
  examples: number;
  losses: number[];
  seconds: number;
}

export async function trainDemoAdapter(o: TrainDemoAdapterOptions): Promise<DemoAdapterResult> {
  const started = performance.now();
  const s = { ...DEMO_TRAINING, ...o.settings };
  const own = o.workDir === undefined;
  const dir = o.workDir ?? mkdtempSync(join(tmpdir(), 'fedit-demo-train-'));
  mkdirSync(dir, { recursive: true });
  try {
    const dataFile = join(dir, 'data.jsonl');
    writeFileSync(dataFile, toJsonl(o.records));
    const options: LocalTrainingOptions = {
      modelDir: o.modelDir,
      dataFiles: [dataFile],
      format: 'dolly',
      adapterOut: join(dir, 'adapter'),
      lora: s.lora,
      template: 'chat',
      cutoffLen: s.cutoffLen,
      batchSize: s.batchSize,
      epochs: 1,
      maxSteps: s.steps,
      lr: s.lr,
      schedule: s.schedule,
      heldOutFraction: 0,
      checkpointEvery: 0,
      seed: o.seed ?? 0,
      threads: o.threads,
      initialAdapter: o.initial,
      restart: true,
    };
    const result = await runLocalTraining(options);
    const adapter = await readAdapter(result.adapterDir!);
    return {
      tensors: new Map([...adapter.tensors].map(([n, t]) => [n, tensorToF32(t)])),
      examples: result.report.usable,
      losses: result.losses,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    if (own) rmSync(dir, { recursive: true, force: true });
  }
}
