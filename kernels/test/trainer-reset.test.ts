// Trainer.reset: a trainer kept across runs (a participant's rounds) and reset to a new run's
// options continues exactly as a trainer created for that run would, bit for bit, on the graphs
// it already compiled; options that would compile other graphs are told apart (compilesSameAs)
// and refused by reset.

import test, { type ExecutionContext } from 'ava';
import { LORA_TARGETS, loraTensorSpecs, type LoraConfig } from '../src/model/lora.ts';
import { normalSampler } from '../src/model/random.ts';
import { TrainingOptionsError } from '../src/train/federated-options.ts';
import { DEFAULT_ADAMW } from '../src/train/optimizer.ts';
import { Trainer, type TrainerOptions, type TrainerState } from '../src/train/trainer.ts';
import { randomRows, tinyModel, type TinyModel } from './helpers/tiny.ts';

// Dropout on: the masks depend on the run's seed, which reset must take from the new options.
const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0.1, targets: [...LORA_TARGETS] };

/** An adapter with B != 0 (a global adapter after some round), different for each `seed`. */
function adapter(m: TinyModel, seed: number): Map<string, Float32Array> {
  const rnd = normalSampler(seed);
  return new Map(
    loraTensorSpecs(m.config, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * 0.1),
    ]),
  );
}

function baseOptions(m: TinyModel, overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: m.config,
    weights: m.store,
    lora,
    batch: 2,
    seq: 16,
    seqBuckets: [12, 8],
    optimizer: DEFAULT_ADAMW,
    seed: 7,
    threads: 1,
    ...overrides,
  };
}

/** Three steps over rows of two buckets (8 and 16 tokens), `k` micro-batches each. */
async function train(trainer: Trainer, k: number, seed: number): Promise<TrainerState> {
  const vocab = trainer.options.model.vocabSize;
  for (const [step, length] of [6, 14, 6].entries()) {
    const rows = randomRows(vocab, 2 * k, length, seed + step);
    const micro = Array.from({ length: k }, (_, i) => rows.slice(2 * i, 2 * i + 2));
    await trainer.trainStep(micro, 1e-2);
  }
  return trainer.exportState();
}

function sameState(t: ExecutionContext, a: TrainerState, b: TrainerState): void {
  t.is(a.step, b.step);
  t.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  for (const [name, v] of a.tensors) {
    const w = b.tensors.get(name)!;
    t.true(
      Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(
        Buffer.from(w.buffer, w.byteOffset, w.byteLength),
      ),
      `${name} bit for bit`,
    );
  }
}

const cases: [
  string,
  (m: TinyModel) => Partial<TrainerOptions>,
  (m: TinyModel) => Partial<TrainerOptions>,
][] = [
  ['plain LoRA with dropout', () => ({}), () => ({})],
  [
    'FFA-LoRA with FedProx (a new mu, anchored at the new start)',
    () => ({ freezeLoraA: true, proximal: { mu: 0.5 } }),
    () => ({ freezeLoraA: true, proximal: { mu: 2 } }),
  ],
  [
    'gradient accumulation with FedProx and a SCAFFOLD correction (new values)',
    (m) => ({ microBatches: 2, proximal: { mu: 1 }, gradientCorrection: adapter(m, 40) }),
    (m) => ({ microBatches: 2, proximal: { mu: 1 }, gradientCorrection: adapter(m, 41) }),
  ],
];

for (const [name, first, second] of cases) {
  test(`a reset trainer trains a new run bit for bit as a new trainer does: ${name}`, async (t) => {
    const m = await tinyModel({}, { seed: 3 });
    try {
      const k = first(m).microBatches ?? 1;
      const kept = await Trainer.create(baseOptions(m, { ...first(m), initial: adapter(m, 1), seed: 11 }));
      await train(kept, k, 100);
      const compiled = kept.compiledGraphs;

      // The next round: another global adapter, another seed, the same graphs.
      const next = baseOptions(m, { ...second(m), initial: adapter(m, 2), seed: 12 });
      t.true(kept.compilesSameAs(next));
      kept.reset(next);
      t.is(kept.step, 0);
      const reused = await train(kept, k, 200);
      t.deepEqual(kept.compiledGraphs, compiled, 'nothing compiled again');
      await kept.release();

      const fresh = await Trainer.create(next);
      const expected = await train(fresh, k, 200);
      await fresh.release();
      sameState(t, reused, expected);
    } finally {
      m.cleanup();
    }
  });
}

test('a reset trainer resumes a checkpoint as a new trainer does', async (t) => {
  const m = await tinyModel({}, { seed: 3 });
  try {
    const options = baseOptions(m, { initial: adapter(m, 2), seed: 12, proximal: { mu: 1 } });
    const interrupted = await Trainer.create(options);
    await interrupted.trainStep([randomRows(m.config.vocabSize, 2, 6, 5)], 1e-2);
    const checkpoint = await interrupted.exportState();
    await interrupted.release();

    const kept = await Trainer.create(baseOptions(m, { initial: adapter(m, 1), proximal: { mu: 1 } }));
    await train(kept, 1, 100);
    kept.reset(options);
    kept.importState(checkpoint);
    const fresh = await Trainer.create(options);
    fresh.importState(checkpoint);
    sameState(t, await train(kept, 1, 300), await train(fresh, 1, 300));
    await kept.release();
    await fresh.release();
  } finally {
    m.cleanup();
  }
});

test('options that compile other graphs are told apart, and reset refuses them', async (t) => {
  const m = await tinyModel({}, { seed: 3 });
  const other = await tinyModel({}, { seed: 4 });
  try {
    const options = baseOptions(m, { proximal: { mu: 1 }, initial: adapter(m, 1) });
    const trainer = await Trainer.create(options);
    const same: [string, Partial<TrainerOptions>][] = [
      ['seed', { seed: 99 }],
      ['initial', { initial: adapter(m, 5) }],
      ['proximal mu and anchor', { proximal: { mu: 3, anchor: adapter(m, 6) } }],
      ['onWarning', { onWarning: () => undefined }],
      ['buckets in another order', { seqBuckets: [8, 12] }],
    ];
    for (const [what, change] of same)
      t.true(trainer.compilesSameAs({ ...options, ...change }), `${what} is fed, not compiled`);
    const different: [string, Partial<TrainerOptions>][] = [
      ['weights', { weights: other.store }],
      ['LoRA rank', { lora: { ...lora, rank: 2 } }],
      ['LoRA dropout', { lora: { ...lora, dropout: 0 } }],
      ['LoRA targets', { lora: { ...lora, targets: ['q_proj'] } }],
      ['batch', { batch: 4 }],
      ['sequence buckets', { seqBuckets: [8] }],
      ['largest sequence', { seq: 32 }],
      ['micro-batches', { microBatches: 2 }],
      ['weight decay', { optimizer: { ...DEFAULT_ADAMW, weightDecay: 0 } }],
      ['clip norm', { optimizer: { ...DEFAULT_ADAMW, maxGradNorm: 0.5 } }],
      ['freezeLoraA', { freezeLoraA: true }],
      ['FedProx off', { proximal: undefined }],
      ['a SCAFFOLD correction', { gradientCorrection: adapter(m, 7) }],
      ['threads', { threads: 2 }],
      ['evalOnly', { evalOnly: true }],
    ];
    for (const [what, change] of different) {
      const changed = { ...options, ...change };
      t.false(trainer.compilesSameAs(changed), `${what} is compiled in`);
      t.throws(() => trainer.reset(changed), { instanceOf: TrainingOptionsError }, what);
    }
    await trainer.release();
  } finally {
    m.cleanup();
    other.cleanup();
  }
});
