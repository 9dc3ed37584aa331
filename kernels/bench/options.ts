// The options both sides of the training benchmark take, defined once; the same flags are passed
// on to the PyTorch reference, which names them alike.

import { availableParallelism } from 'node:os';

export const TRAIN_BENCH_OPTIONS = {
  preset: { type: 'string', default: 'smollm2-135m' },
  batch: { type: 'string', default: '4' },
  seq: { type: 'string', default: '256' },
  rank: { type: 'string', default: '16' },
  alpha: { type: 'string', default: '32' },
  targets: { type: 'string', default: 'q_proj,v_proj' },
  steps: { type: 'string', default: '5' },
  warmup: { type: 'string', default: '2' },
  threads: { type: 'string', default: String(availableParallelism()) },
  provider: { type: 'string', default: 'cpu' },
} as const;
