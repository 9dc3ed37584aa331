// A round's local training with the federation's learning settings (train-lora.ts): FFA-LoRA keeps
// the global adapter's A factors bit for bit, FedProx pulls the result toward the global adapter,
// SCAFFOLD's correction moves each step, and all are part of the run's identity, so a checkpoint
// resumes only under the same ones;
// a session's kept trainer (TrainerKeeper) trains its next rounds bit for bit as a new one would.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Trainer,
  loadCheckpoint,
  loraTensorSpecs,
  normalSampler,
  uniformSampler,
  type LoraConfig,
  type TokenRow,
} from '@fedit/kernels';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import {
  TrainerKeeper,
  trainLora,
  type LoraRunInputs,
  type LoraRunSettings,
} from '../src/core/train/train-lora.ts';

const lora: LoraConfig = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] };

async function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-fed-local-'));
  await writeTinyChatModel(join(dir, 'model'));
  const model = await loadCheckpoint(join(dir, 'model'), { cacheDir: join(dir, 'cache') });
  const rand = uniformSampler(3);
  const train: TokenRow[] = Array.from({ length: 16 }, () => {
    const ids = Array.from({ length: 12 }, () => Math.floor(rand() * model.config.vocabSize));
    return { inputIds: ids, labels: ids };
  });
  // A global adapter with B != 0, as after a first round (PEFT's B = 0 leaves A's first gradient at zero).
  const rnd = normalSampler(5);
  const global = new Map(
    loraTensorSpecs(model.config, lora).map((s) => [
      s.name,
      Float32Array.from({ length: s.shape[0] * s.shape[1] }, () => rnd() * 0.1),
    ]),
  );
  const inputs = (checkpoint: string): LoraRunInputs => ({
    model,
    rows: { train, heldOut: [] },
    checkpointDir: join(dir, checkpoint),
    runKey: 'federated-local-training-test',
  });
  const settings = (o: Partial<LoraRunSettings> = {}): LoraRunSettings => ({
    lora,
    cutoffLen: 16,
    batchSize: 4,
    epochs: 1,
    maxSteps: 6,
    lr: 1e-2,
    schedule: 'constant',
    seed: 1,
    threads: 1,
    initialAdapter: global,
    ...o,
  });
  return { global, inputs, settings, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function distance(a: Map<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): number {
  let sum = 0;
  for (const [name, v] of a) {
    const w = b.get(name)!;
    for (let i = 0; i < v.length; i++) sum += (v[i] - w[i]) ** 2;
  }
  return Math.sqrt(sum);
}

test('freezeLoraA keeps every lora_A of the global adapter bit for bit while every lora_B trains', async (t) => {
  const w = await workspace();
  try {
    const r = await trainLora(w.inputs('ffa'), w.settings({ freezeLoraA: true }));
    t.true(r.completed);
    t.is(r.tensors!.size, w.global.size, 'the update holds every tensor');
    for (const [name, start] of w.global) {
      const now = r.tensors!.get(name)!;
      if (name.includes('lora_A')) t.deepEqual(Array.from(now), Array.from(start), name);
      else t.true(distance(new Map([[name, now]]), new Map([[name, start]])) > 1e-3, `${name} trained`);
    }
  } finally {
    w.cleanup();
  }
});

test('proximalMu pulls the trained adapter toward the global adapter it started from', async (t) => {
  const w = await workspace();
  try {
    const plain = await trainLora(w.inputs('plain'), w.settings());
    const prox = await trainLora(w.inputs('prox'), w.settings({ proximalMu: 5 }));
    const [dPlain, dProx] = [distance(plain.tensors!, w.global), distance(prox.tensors!, w.global)];
    t.log(`distance from the global adapter after 6 steps: mu = 0 ${dPlain}, mu = 5 ${dProx}`);
    t.true(dProx < 0.9 * dPlain);
    await t.throwsAsync(trainLora(w.inputs('bad'), w.settings({ proximalMu: -1 })), {
      message: /proximal mu must be a finite number >= 0, got -1/,
    });
  } finally {
    w.cleanup();
  }
});

test('a checkpoint resumes only under the same freezeLoraA and proximalMu (false and 0 are absent), and ends where an uninterrupted run does', async (t) => {
  const w = await workspace();
  try {
    /** Trains with `o` until the first step, leaving a checkpoint; whether it resumed one. */
    const stopAfterOneStep = async (checkpoint: string, o: Partial<LoraRunSettings>) => {
      const stop = new AbortController();
      let resumed = false;
      const r = await trainLora(
        w.inputs(checkpoint),
        w.settings({
          ...o,
          signal: stop.signal,
          onEvent: (e) => {
            if (e.type === 'resumed') resumed = true;
            if (e.type === 'step') stop.abort();
          },
        }),
      );
      t.false(r.completed);
      return resumed;
    };
    t.false(await stopAfterOneStep('prox', { proximalMu: 0.5 }));
    await t.throwsAsync(stopAfterOneStep('prox', { proximalMu: 1 }), { message: /different run/ });
    await t.throwsAsync(stopAfterOneStep('prox', { proximalMu: 0.5, freezeLoraA: true }), {
      message: /different run/,
    });
    t.true(await stopAfterOneStep('prox', { proximalMu: 0.5 }), 'the same settings resume');
    // ... and end exactly where an uninterrupted run does: the anchor is the global adapter, not
    // the state resumed from.
    const resumed = await trainLora(w.inputs('prox'), w.settings({ proximalMu: 0.5, freezeLoraA: false }));
    const straight = await trainLora(w.inputs('straight'), w.settings({ proximalMu: 0.5 }));
    for (const [name, v] of straight.tensors!)
      t.deepEqual(Array.from(resumed.tensors!.get(name)!), Array.from(v), name);

    t.false(await stopAfterOneStep('off', { freezeLoraA: false, proximalMu: 0 }));
    t.true(await stopAfterOneStep('off', {}), 'off said as false and 0 is off said by absence');
  } finally {
    w.cleanup();
  }
});

test("SCAFFOLD's correction moves each step by -lr * (c - c_i), and a checkpoint resumes only under the same correction", async (t) => {
  const w = await workspace();
  try {
    const rnd = normalSampler(9);
    const correction = (scale: number) =>
      new Map([...w.global].map(([name, v]) => [name, Float32Array.from(v, () => rnd() * scale)]));
    const c = correction(0.5);
    const plain = await trainLora(w.inputs('plain'), w.settings({ maxSteps: 1 }));
    const corrected = await trainLora(
      w.inputs('corrected'),
      w.settings({ maxSteps: 1, scaffoldCorrection: c }),
    );
    // One step from the same start: the same AdamW step, moved a further -lr * correction.
    for (const [name, v] of plain.tensors!) {
      const got = corrected.tensors!.get(name)!;
      const worst = Math.max(...Array.from(v, (p, i) => Math.abs(got[i] - (p - 1e-2 * c.get(name)![i]))));
      t.true(worst < 1e-6, `${name}: off by ${worst}`);
    }
    const stop = new AbortController();
    const firstStep = (o: Partial<LoraRunSettings>) =>
      trainLora(
        w.inputs('kept'),
        w.settings({ ...o, signal: stop.signal, onEvent: (e) => e.type === 'step' && stop.abort() }),
      );
    await firstStep({ scaffoldCorrection: c });
    await t.throwsAsync(firstStep({ scaffoldCorrection: correction(0.5) }), { message: /different run/ });
  } finally {
    w.cleanup();
  }
});

test('a kept trainer trains the next rounds bit for bit as a new one, resumes checkpoints, and is replaced when the settings compile other graphs', async (t) => {
  const w = await workspace();
  let created = 0;
  const keeper = new TrainerKeeper((o) => (created++, Trainer.create(o)));
  try {
    // Dropout on (its masks follow each round's seed), FFA-LoRA and FedProx: all a round may use.
    const round = (
      initialAdapter: ReadonlyMap<string, Float32Array>,
      seed: number,
      o: Partial<LoraRunSettings> = {},
    ) =>
      w.settings({
        lora: { ...lora, dropout: 0.1 },
        freezeLoraA: true,
        proximalMu: seed,
        seed,
        initialAdapter,
        ...o,
      });
    const kept = (checkpoint: string) => ({ ...w.inputs(checkpoint), trainers: keeper });
    const first = await trainLora(kept('r1'), round(w.global, 1));
    const second = await trainLora(kept('r2'), round(first.tensors!, 2));
    const fresh = await trainLora(w.inputs('f2'), round(first.tensors!, 2));
    for (const [name, v] of fresh.tensors!)
      t.deepEqual(Array.from(second.tensors!.get(name)!), Array.from(v), name);
    t.is(created, 1, "the second round reset the first round's trainer");

    // A round stopped after its first step resumes from its checkpoint on the kept trainer.
    const stop = new AbortController();
    const stopped = await trainLora(
      kept('r3'),
      round(second.tensors!, 3, { signal: stop.signal, onEvent: () => stop.abort() }),
    );
    t.false(stopped.completed);
    let resumed = false;
    const third = await trainLora(
      kept('r3'),
      round(second.tensors!, 3, { onEvent: (e) => (resumed ||= e.type === 'resumed') }),
    );
    t.true(resumed);
    const straight = await trainLora(w.inputs('f3'), round(second.tensors!, 3));
    for (const [name, v] of straight.tensors!)
      t.deepEqual(Array.from(third.tensors!.get(name)!), Array.from(v), name);
    t.is(created, 1);

    // Other compiled graphs: another batch size, then FedProx off, each a new trainer.
    await trainLora(kept('r4'), round(third.tensors!, 4, { batchSize: 2 }));
    t.is(created, 2);
    await trainLora(kept('r5'), round(third.tensors!, 5, { batchSize: 2, proximalMu: 0 }));
    t.is(created, 3);
    await trainLora(kept('r6'), round(third.tensors!, 6, { batchSize: 2, proximalMu: 0 }));
    t.is(created, 3, 'the same settings again reuse it');
  } finally {
    await keeper.release();
    w.cleanup();
  }
});
