// The loss history of a local training run, written beside the adapter as trainer_state.json in the
// layout of Hugging Face Trainer's file of that name, so the tools that read one (plotting
// scripts, notebooks) read fedit's. The fields fedit writes:
//
//   global_step, max_steps        optimizer steps done, and planned
//   epoch, num_train_epochs       fractional epochs done (global_step / steps per epoch), planned
//   logging_steps, eval_steps     1 (every step is logged), --eval-every (0: at the end only)
//   train_batch_size              examples per micro-batch
//   log_history                   one entry per step, in step order:
//                                   { step, epoch, loss, learning_rate, grad_norm }
//                                 and one per held-out evaluation:
//                                   { step, epoch, eval_loss, eval_perplexity, eval_tokens }
//
// `step` counts optimizer steps from 1, `epoch` is step / steps per epoch, `loss` the mean token
// loss of that step's batch, `learning_rate` the rate that step used (Trainer logs the rate the
// scheduler gives after the step; fedit logs the one applied).
//
// A run stopped by Ctrl-C or a crash resumes from its last checkpoint. The history goes into the
// checkpoint folder with each checkpoint (up to its step) and is read back on resume, so the file
// of a resumed run is the file of an uninterrupted one: every step once, in order.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainingEvent } from './train-lora.ts';

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
}

export interface EvalLog {
  step: number;
  epoch: number;
  eval_loss: number;
  eval_perplexity: number;
  eval_tokens: number;
}

export interface TrainerState {
  global_step: number;
  max_steps: number;
  epoch: number;
  num_train_epochs: number;
  logging_steps: number;
  eval_steps: number;
  train_batch_size: number;
  log_history: (StepLog | EvalLog)[];
}

/** The history's file in a checkpoint folder. */
const CHECKPOINT_HISTORY_FILE = 'log_history.json';

/**
 * Collects the history from a run's events. `observe` runs inside the run's onEvent, which the
 * trainer does not await, so it works synchronously: the history is on disk before the run goes on.
 */
export class TrainingHistory {
  private entries: (StepLog | EvalLog)[] = [];
  private stepsPerEpoch = 1;
  private maxSteps = 0;
  private lastStep = 0;

  constructor(
    private readonly checkpointDir: string,
    private readonly settings: { batchSize: number; evalEvery?: number },
  ) {}

  observe(e: TrainingEvent): void {
    switch (e.type) {
      case 'ready':
        this.stepsPerEpoch = e.stepsPerEpoch;
        this.maxSteps = e.totalSteps;
        break;
      case 'resumed':
        this.entries = this.saved().filter((entry) => entry.step <= e.step);
        this.lastStep = e.step;
        break;
      case 'step':
        this.lastStep = e.step;
        this.entries.push({
          step: e.step,
          epoch: this.epochAt(e.step),
          loss: e.loss,
          learning_rate: e.lr,
          grad_norm: e.gradNorm,
        });
        break;
      case 'eval':
        this.entries.push({
          step: e.step,
          epoch: this.epochAt(e.step),
          eval_loss: e.loss,
          eval_perplexity: e.perplexity,
          eval_tokens: e.tokens,
        });
        break;
      case 'checkpoint': {
        // Written aside and renamed, so a crash leaves the previous checkpoint's history whole.
        const file = join(e.dir, CHECKPOINT_HISTORY_FILE);
        writeFileSync(`${file}.tmp`, JSON.stringify(this.entries.filter((entry) => entry.step <= e.step)));
        renameSync(`${file}.tmp`, file);
        break;
      }
    }
  }

  trainerState(): TrainerState {
    return {
      global_step: this.lastStep,
      max_steps: this.maxSteps,
      epoch: this.epochAt(this.lastStep),
      num_train_epochs: Math.ceil(this.maxSteps / this.stepsPerEpoch),
      logging_steps: 1,
      eval_steps: this.settings.evalEvery ?? 0,
      train_batch_size: this.settings.batchSize,
      log_history: this.entries,
    };
  }

  private epochAt(step: number): number {
    return step / this.stepsPerEpoch;
  }

  /** The history saved with the checkpoint being resumed; none from a checkpoint of an older fedit. */
  private saved(): (StepLog | EvalLog)[] {
    let text: string;
    try {
      text = readFileSync(join(this.checkpointDir, CHECKPOINT_HISTORY_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return JSON.parse(text) as (StepLog | EvalLog)[];
  }
}
