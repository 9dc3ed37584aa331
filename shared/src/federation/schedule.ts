// The learning rate of each round: the federation's `training.lr`, decayed across rounds when its
// config sets `training.lrSchedule` (within a round a participant's rate is constant). With R
// rounds and t = (round - 1) / (R - 1) (0 when R = 1), f = finalFraction:
//   constant  lr
//   linear    lr * (1 - (1 - f) * t)
//   cosine    lr * (f + (1 - f) * (1 + cos(pi * t)) / 2)
// so round 1 trains at lr and round R at f * lr. The coordinator announces it with each round.
// `round` is the training round (1 + the rounds aggregated before it; the round-open record's
// trainingRound): an aborted round does not advance the schedule, as it does not count toward R.

import type { FederationConfig } from './config.ts';

export function roundLearningRate(
  config: Pick<FederationConfig, 'rounds'> & {
    training: Pick<FederationConfig['training'], 'lr' | 'lrSchedule'>;
  },
  round: number,
): number {
  const { lr, lrSchedule } = config.training;
  if (!lrSchedule || lrSchedule.kind === 'constant') return lr;
  const t = config.rounds > 1 ? Math.min(1, Math.max(0, (round - 1) / (config.rounds - 1))) : 0;
  const f = lrSchedule.finalFraction;
  if (lrSchedule.kind === 'linear') return lr * (1 - (1 - f) * t);
  return lr * (f + ((1 - f) * (1 + Math.cos(Math.PI * t))) / 2);
}
