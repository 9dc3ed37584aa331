// `npm run demo` / `fedit demo`: the product's main job, on this machine. A coordinator and several
// participants on loopback, the built-in base model (pretrained by fedit's own engine), built-in
// instruction tasks split non-IID across participants (each holds only some task categories, like
// Shepherd's category-sharded Dolly), several FedIT rounds through the real protocol, crypto and
// round log — then the federated global adapter against each participant's local-only adapter on
// every category, and the audit's verdict.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_ADAMW, Trainer, loadCheckpoint, loadTokenizer } from '@fedit/kernels';
import { auditFederation, BlobStore, FeditError, federationPaths } from '@fedit/shared';
import { createInvite, startCoordinator } from '@fedit/coordinator';
import { initFederationFromModel } from '../operator/init-federation.ts';
import { prepareDataset, sequenceBuckets } from '../core/data/index.ts';
import { evaluateRows } from '../core/train/local-training.ts';
import { joinFederation, Participant, type RoundHistoryEntry } from '../core/federation/index.ts';
import { defaultDemoCacheDir, ensureDemoBaseModel } from './base-model.ts';
import { taskAccuracy, type TaskAccuracy } from './evaluate.ts';
import { demoSplit, toJsonl, TASK_CATEGORIES, type TaskRecord } from './tasks.ts';
import { DEMO_LORA, DEMO_TRAINING, trainDemoAdapter } from './train.ts';

export interface DemoOptions {
  /** Where the federation folder and the participants' folders go. */
  dir: string;
  participants?: number;
  rounds?: number;
  threads?: number;
  cacheDir?: string;
  /** Lines for a person, as they happen. */
  print?: (line: string) => void;
}

export interface DemoRound {
  round: number;
  participants: number;
  /** Who took part (uploaded an update that was counted). */
  took: string[];
  trainLoss: number;
  heldOutLoss: number;
  accuracy: TaskAccuracy;
}

export interface DemoResult {
  federationDir: string;
  rounds: DemoRound[];
  baseAccuracy: TaskAccuracy;
  global: TaskAccuracy;
  localOnly: { name: string; categories: string[]; accuracy: TaskAccuracy }[];
  auditOk: boolean;
  seconds: number;
}

const pct = (x: number) => `${(100 * x).toFixed(0).padStart(3)}%`;

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  const print = o.print ?? (() => {});
  const n = o.participants ?? 3;
  const rounds = o.rounds ?? 8;
  const threads = o.threads ?? 1;
  const root = resolve(o.dir);
  mkdirSync(root, { recursive: true });

  print('fedit demo: a federation of ' + `${n} participants on this machine, ${rounds} FedIT rounds\n`);
  print("1. the built-in base model (pretrained by fedit's own engine on first use, then cached)");
  const modelDir = await ensureDemoBaseModel(o.cacheDir ?? defaultDemoCacheDir(), {
    threads,
    onProgress: (p) =>
      p.step % 200 === 0 && print(`   pretraining: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`),
  });
  print(`   ${modelDir}`);

  const split = demoSplit({ participants: n, categoriesPerParticipant: 2 });
  const evalFile = join(root, 'evaluation.jsonl');
  writeFileSync(evalFile, toJsonl(split.evaluation));
  print(
    `2. built-in tasks, non-IID: ${split.participants.map((p) => `${p.name} holds ${p.categories.join(' + ')}`).join('; ')}`,
  );
  print(
    `   held-out evaluation: ${split.evaluation.length} tasks over all ${TASK_CATEGORIES.length} categories`,
  );

  const held = await heldOutEvaluator(modelDir, evalFile, threads);
  const baseAccuracy = await taskAccuracy({ modelDir, examples: split.evaluation, threads });
  print(`   the base model alone: ${pct(baseAccuracy.overall.accuracy)} of the held-out tasks right\n`);

  // ---- the federation ----
  const fedDir = join(root, 'federation');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelName: 'fedit demo base (built in)',
    seed: 1,
    settings: {
      name: 'fedit demo',
      lora: { ...DEMO_LORA, targets: [...DEMO_LORA.targets] },
      training: {
        localSteps: DEMO_TRAINING.steps,
        batchSize: DEMO_TRAINING.batchSize,
        lr: DEMO_TRAINING.lr,
        cutoffLen: DEMO_TRAINING.cutoffLen,
        template: 'chat',
        trainOnInputs: false,
      },
      rounds,
      participantsPerRound: { fraction: 1, minimum: n },
      minUpdates: n,
      roundDeadlineSeconds: 900,
      limits: { maxUpdateNorm: 1000, maxUploadBytes: 64 * 1024 * 1024, maxExampleCount: 1_000_000 },
    },
  });
  // Each closed round is evaluated in order while the next one trains.
  let onClosed: (round: number, adapterHash: string, updates: number) => void = () => {};
  const coordinator = await startCoordinator({
    dir: fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => {
      if (e.type === 'round-closed') onClosed(e.round, e.adapter, e.updates);
      if (e.type === 'round-aborted') print(`round ${e.round} aborted: ${e.reason}`);
    },
  });
  print(`3. coordinator listening on ${coordinator.url} (federation folder ${fedDir})`);

  let participantFailed: (err: Error) => void = () => {};
  const failure = new Promise<never>((_, reject) => (participantFailed = reject));
  failure.catch(() => {}); // handled by the race below; a failure after it is moot
  const blobs = new BlobStore(federationPaths(fedDir).blobs);
  const history = new Map<number, { name: string; entry: RoundHistoryEntry }[]>();
  const stopParticipants = new AbortController();
  const runs: Promise<unknown>[] = [];
  const table: DemoRound[] = [];
  const failedParticipant = (name: string, err: unknown) =>
    new FeditError('DEMO_FAILED', `${name} failed: ${(err as Error).message}`);
  // However the federation part ends (a participant or an evaluation failing, no round
  // aggregated, or done), the participants stop and the coordinator closes: a listening
  // coordinator would keep `fedit demo` from ever exiting.
  const stopAll = async () => {
    stopParticipants.abort();
    await Promise.allSettled(runs);
    await coordinator.close();
  };
  try {
    for (const shard of split.participants) {
      const home = join(root, 'participants', shard.name);
      const dataFile = join(home, 'data.jsonl');
      try {
        mkdirSync(home, { recursive: true });
        writeFileSync(dataFile, toJsonl(shard.train));
        await joinFederation(createInvite(fedDir, { url: coordinator.url, note: shard.name }), {
          displayName: shard.name,
          home,
          confirm: () => true,
        });
      } catch (err) {
        // A participant that cannot even be set up (its folder or data not writable) fails the demo
        // as one that fails while running does: at once, named.
        throw failedParticipant(shard.name, err);
      }
      const p = new Participant();
      p.on('round', (e: RoundHistoryEntry) => {
        if (e.trainLoss === undefined || !e.uploaded) return;
        const list = (history.get(e.round) ?? []).filter((x) => x.name !== shard.name);
        list.push({ name: shard.name, entry: e });
        history.set(e.round, list);
      });
      runs.push(
        p
          .start({ modelDir, dataFiles: [dataFile], home, threads, signal: stopParticipants.signal })
          .catch((err) => {
            // Every round needs all participants (minUpdates = n), so one that fails would leave the
            // rest waiting out the round deadline: stop the demo at once and say who failed.
            participantFailed(failedParticipant(shard.name, err));
          }),
      );
    }
    print(`   ${n} participants joined with one-time invites and are training\n`);

    print(
      'round  took part     train loss  held-out loss  accuracy  ' +
        TASK_CATEGORIES.map((c) => c.padStart(9)).join(' '),
    );
    let evaluating = Promise.resolve();
    onClosed = (round, adapterHash, updates) => {
      evaluating = evaluating.then(async () => {
        const tensors = blobs.getF32(adapterHash)!;
        const adapter = { config: DEMO_LORA, tensors };
        const accuracy = await taskAccuracy({ modelDir, adapter, examples: split.evaluation, threads });
        const heldOutLoss = await held(tensors);
        const took = (history.get(round) ?? []).sort((a, b) => a.name.localeCompare(b.name));
        const row: DemoRound = {
          round,
          participants: updates,
          took: took.map((t) => t.name),
          trainLoss: mean(took.map((t) => t.entry.trainLoss!)),
          heldOutLoss,
          accuracy,
        };
        table.push(row);
        const who = row.took.map((t) => t.replace('participant-', 'p')).join(',');
        const cells = TASK_CATEGORIES.map((c) => pct(accuracy.byCategory[c]?.accuracy ?? 0).padStart(9)).join(
          ' ',
        );
        const loss = `${row.trainLoss.toFixed(4).padStart(10)}  ${heldOutLoss.toFixed(4).padStart(13)}`;
        print(
          `${String(round).padStart(5)}  ${who.padEnd(12)}  ${loss}  ${pct(accuracy.overall.accuracy).padStart(8)}  ${cells}`,
        );
      });
      evaluating.catch(() => {}); // awaited after the last round; not unhandled in between
    };
    await Promise.race([coordinator.finished, failure]);
    // Rounds close (or abort) in order; the last evaluation may still be running.
    await evaluating;
    if (table.length === 0) {
      throw new FeditError(
        'DEMO_FAILED',
        `no round was aggregated (every round aborted, see above); the federation folder ${fedDir} holds the log`,
      );
    }
    // Participants finish by themselves when the last round closes; the signal only covers stragglers.
    const timeout = setTimeout(() => stopParticipants.abort(), 30_000);
    await Promise.allSettled(runs);
    clearTimeout(timeout);
  } finally {
    await stopAll();
  }

  // ---- local-only baselines: the same budget, own data only ----
  print('\n4. each participant alone, same number of steps on its own data only');
  const localOnly: DemoResult['localOnly'] = [];
  for (const shard of split.participants) {
    const r = await trainDemoAdapter({
      modelDir,
      records: shard.train,
      settings: { steps: DEMO_TRAINING.steps * rounds },
      threads,
      seed: 7,
    });
    const accuracy = await taskAccuracy({
      modelDir,
      adapter: { config: DEMO_LORA, tensors: r.tensors },
      examples: split.evaluation,
      threads,
    });
    localOnly.push({ name: shard.name, categories: shard.categories, accuracy });
  }
  const global = table.at(-1)!.accuracy;
  print('\nadapter                 overall  ' + TASK_CATEGORIES.map((c) => c.padStart(9)).join(' '));
  const line = (name: string, a: TaskAccuracy) =>
    `${name.padEnd(22)}  ${pct(a.overall.accuracy).padStart(7)}  ` +
    TASK_CATEGORIES.map((c) => pct(a.byCategory[c]?.accuracy ?? 0).padStart(9)).join(' ');
  print(line('base model', baseAccuracy));
  for (const l of localOnly) print(line(`${l.name} alone`, l.accuracy));
  print(line('federated (FedIT)', global));
  const beats = localOnly.every((l) => global.overall.accuracy > l.accuracy.overall.accuracy);
  print(
    `\nfederated ${beats ? 'beats' : 'does NOT beat'} every local-only adapter on the held-out tasks of all categories`,
  );

  const audit = await auditFederation(fedDir);
  print(
    `\n5. audit of ${fedDir}: ${audit.ok ? 'the log verifies' : 'FAILED'} — ${audit.records} records, ${audit.rounds.filter((r) => r.aggregation === 'verified').length} of ${audit.rounds.length} aggregates recomputed and matching`,
  );
  print(`   check it yourself: npm run fedit -- audit ${fedDir}`);
  const seconds = (performance.now() - started) / 1000;
  print(`\ndone in ${seconds.toFixed(0)} s`);
  return {
    federationDir: fedDir,
    rounds: table,
    baseAccuracy,
    global,
    localOnly,
    auditOk: audit.ok,
    seconds,
  };
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Held-out loss of an adapter on the evaluation tasks, on the tokens training sees. */
async function heldOutEvaluator(modelDir: string, evalFile: string, threads: number) {
  const model = await loadCheckpoint(modelDir);
  const tokenizer = await loadTokenizer(modelDir);
  const prepared = await prepareDataset([{ path: evalFile, format: 'dolly' }], {
    tokens: { tokenizer, template: 'chat', cutoffLen: DEMO_TRAINING.cutoffLen },
  });
  const rows = prepared.rows!.train;
  const buckets = sequenceBuckets(DEMO_TRAINING.cutoffLen);
  return async (tensors: ReadonlyMap<string, Float32Array>) => {
    const trainer = await Trainer.create({
      model: model.config,
      weights: model.store,
      lora: DEMO_LORA,
      initial: tensors,
      batch: DEMO_TRAINING.batchSize,
      seq: Math.max(...buckets),
      seqBuckets: buckets,
      optimizer: DEFAULT_ADAMW,
      seed: 0,
      evalOnly: true,
      threads,
    });
    try {
      return (await evaluateRows(trainer, rows, DEMO_TRAINING.batchSize)).loss;
    } finally {
      await trainer.release();
    }
  };
}

export type { TaskRecord };
