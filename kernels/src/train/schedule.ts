// Learning-rate schedules, on the host (the step graphs take the rate as an input). They follow
// Hugging Face transformers' get_*_schedule_with_warmup, which FedIT's Shepherd code trains with:
// the rate at 0-based step s is base * factor(s), and warmup starts from 0.

import { FeditError } from '@fedit/shared';

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface LrSchedule {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  /** Steps of the whole run (linear and cosine decay to 0 at this step). */
  totalSteps: number;
}

export class ScheduleError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LR_SCHEDULE', message, options);
  }
}

export function validateSchedule(s: LrSchedule): LrSchedule {
  if (!['constant', 'linear', 'cosine'].includes(s.kind))
    throw new ScheduleError(`unknown schedule "${s.kind}"; use constant, linear or cosine`);
  if (!(s.lr > 0) || !Number.isFinite(s.lr))
    throw new ScheduleError(`learning rate must be a positive number, got ${s.lr}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0)
    throw new ScheduleError(`warmup steps must be a whole number >= 0, got ${s.warmupSteps}`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1)
    throw new ScheduleError(`total steps must be a whole number >= 1, got ${s.totalSteps}`);
  return s;
}

/** Learning rate for the 0-based optimizer step `step`. */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.lr * step) / Math.max(1, s.warmupSteps);
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  switch (s.kind) {
    case 'constant':
      return s.lr;
    case 'linear':
      return s.lr * Math.max(0, 1 - progress);
    case 'cosine':
      return s.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
  }
}
