// A few real training steps on one execution provider, timed: what "Automatic" decides with
// (./device.ts chooseDevice). Runs in the training worker (it loads the engine): the federation's
// own model, data, LoRA and batch settings, from PEFT's initialisation, in a scratch checkpoint
// folder that is removed afterwards. Nothing it trains is kept or sent.
//
// The first step is not counted: it builds the ONNX sessions and compiles the graphs (a one-off
// cost of every run, far larger than a step); the others are timed between the trainer's step
// events and their median taken, so one slow step (the OS scheduling something else) does not
// decide.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, loadTokenizer, loraTensorSpecs } from '@fedit/kernels';
import { prepareDataset } from '../core/data/index.ts';
import { trainLora } from '../core/train/train-lora.ts';
import type { DeviceMeasurement, Job } from './worker-protocol.ts';

type MeasureJob = Extract<Job, { kind: 'measure-device' }>;

export async function measureDevice(job: MeasureJob): Promise<DeviceMeasurement> {
  const model = await loadCheckpoint(job.modelDir);
  const tokenizer = await loadTokenizer(job.modelDir);
  const { template, cutoffLen, trainOnInputs } = job.training;
  const prepared = await prepareDataset(job.dataFiles, {
    tokens: { tokenizer, template, cutoffLen, trainOnInputs },
  });
  const rows = prepared.rows;
  if (!rows?.train.length) throw new Error('there are no usable examples to measure training with');
  const scratch = await mkdtemp(join(tmpdir(), 'fedit-measure-'));
  const stepEnds: number[] = [];
  let started: string = job.provider;
  try {
    await trainLora(
      { model, rows, checkpointDir: join(scratch, 'checkpoint'), runKey: `measure:${job.provider}` },
      {
        lora: job.lora,
        cutoffLen,
        batchSize: job.training.batchSize,
        epochs: 1,
        maxSteps: job.steps,
        lr: 1e-4,
        provider: job.provider,
        threads: job.threads > 0 ? job.threads : undefined,
        checkpointEvery: 0,
        onEvent: (event) => {
          if (event.type === 'ready') started = event.provider;
          if (event.type === 'step') stepEnds.push(performance.now());
        },
      },
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const durations = stepEnds.slice(1).map((end, i) => (end - stepEnds[i]) / 1000);
  if (durations.length === 0) throw new Error(`training on ${job.provider} made fewer than 2 steps`);
  return {
    provider: job.provider,
    startedOn: started === 'webgpu' ? 'webgpu' : 'cpu',
    steps: durations.length,
    secondsPerStep: median(durations),
    adapterBytes: loraTensorSpecs(model.config, job.lora).reduce(
      (sum, spec) => sum + 4 * spec.shape.reduce((a, b) => a * b, 1),
      0,
    ),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
