// The learning rate across rounds (schedule.ts): round 1 trains at lr, round R at finalFraction x
// lr, linearly or along a half cosine in between; a one-round federation trains at lr.

import test from 'ava';
import { roundLearningRate, type FederationConfig } from '@fedit/shared';

type Schedule = FederationConfig['training']['lrSchedule'];

const config = (rounds: number, lrSchedule: Schedule, lr = 1) => ({
  rounds,
  training: { lr, ...(lrSchedule && { lrSchedule }) },
});

test('without a schedule, or with a constant one, every round trains at lr', (t) => {
  for (const schedule of [undefined, { kind: 'constant', finalFraction: 0.1 }] as const) {
    const c = config(8, schedule, 2e-3);
    t.deepEqual(
      [1, 4, 8].map((r) => roundLearningRate(c, r)),
      [2e-3, 2e-3, 2e-3],
    );
  }
});

test('linear: lr at the first round, the midpoint half way, finalFraction x lr at the last', (t) => {
  // finalFraction 0.5 and lr 1 keep every value exact in binary64: lr * (1 - (1 - f) * t).
  const c = config(5, { kind: 'linear', finalFraction: 0.5 });
  t.deepEqual(
    [1, 2, 3, 4, 5].map((r) => roundLearningRate(c, r)),
    [1, 0.875, 0.75, 0.625, 0.5],
  );
  // The demo's lr and a tenth at the end: the header's formula, operation for operation.
  const demo = config(8, { kind: 'linear', finalFraction: 0.1 }, 2e-3);
  t.is(roundLearningRate(demo, 1), 2e-3);
  t.is(roundLearningRate(demo, 8), 2e-3 * (1 - (1 - 0.1) * 1));
  t.true(Math.abs(roundLearningRate(demo, 8) - 2e-4) < 1e-18);
});

test('cosine: lr at the first round, the mean of lr and the final rate half way, finalFraction x lr at the last', (t) => {
  const c = config(5, { kind: 'cosine', finalFraction: 0.5 });
  t.is(roundLearningRate(c, 1), 1);
  t.is(roundLearningRate(c, 3), 0.75); // cos(pi/2) ~ 6e-17 vanishes beside 1
  t.is(roundLearningRate(c, 5), 0.5); // cos(pi) = -1 exactly
  // A quarter of the way: f + (1 - f) * (1 + cos(pi/4)) / 2, above the linear schedule's 0.875.
  t.is(roundLearningRate(c, 2), 0.5 + (0.5 * (1 + Math.cos(Math.PI / 4))) / 2);
  t.true(Math.abs(roundLearningRate(c, 2) - 0.9267766952966369) < 1e-15);
  t.true(roundLearningRate(c, 2) > 0.875);
});

test('both decaying schedules never rise from one round to the next', (t) => {
  for (const kind of ['linear', 'cosine'] as const) {
    const c = config(24, { kind, finalFraction: 0.05 }, 2e-3);
    const rates = Array.from({ length: 24 }, (_, i) => roundLearningRate(c, i + 1));
    t.true(
      rates.every((r, i) => i === 0 || r <= rates[i - 1]),
      kind,
    );
    t.is(rates[0], 2e-3, kind);
  }
});

test('a one-round federation trains at lr whatever its schedule', (t) => {
  for (const kind of ['constant', 'linear', 'cosine'] as const) {
    t.is(roundLearningRate(config(1, { kind, finalFraction: 0.1 }, 3e-4), 1), 3e-4, kind);
  }
});

test('a round outside 1..R takes the nearest end of the schedule', (t) => {
  const c = config(4, { kind: 'linear', finalFraction: 0.5 });
  t.is(roundLearningRate(c, 0), 1);
  t.is(roundLearningRate(c, 9), 0.5);
});
