// A federation on a tiny random model, its coordinator running in this process on 127.0.0.1 (a
// free port), and the checks every fault test ends with: the round log verifies, the blob store
// holds what it held before (byte for byte) plus only what the log accounts for, and no upload
// is left half-received on disk.

import type { ExecutionContext } from 'ava';
import { EventRecorder, writeTinyChatModel } from '../../../test/fixtures/tiny-federation.ts';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  auditFederation,
  createInviteToken,
  federationPaths,
  parseInvite,
  peftLoraTensorName,
  publicIdentity,
  readRoundLog,
  tensorFromF32,
  type FederationConfig,
  type PublicIdentity,
  type RoundRecord,
  type Tensor,
} from '@fedit/shared';
import {
  DEFAULT_SETTINGS,
  createInvite,
  initFederation,
  openFederationDir,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
  type RunningCoordinator,
} from '../../src/index.ts';
import { tokenHash } from '../../src/federation/invites.ts';

/** Fails a wait that should have ended long ago (a broken test, never a way to synchronise). */
export const WAIT_LIMIT_MS = 20_000;

let model: Promise<string> | undefined;

/** One tiny random Llama checkpoint per test process (removed when the process exits). */
export function tinyModel(): Promise<string> {
  model ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedit-faults-model-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return writeTinyChatModel(dir);
  })();
  return model;
}

export function tempDir(t: ExecutionContext, prefix = 'fedit-faults-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Settings of a small, fast federation: two participants, one round, a long deadline. */
export const FAST_SETTINGS: Partial<FederationSettings> = {
  name: 'fault tests',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: { localSteps: 1, batchSize: 1, lr: 1e-2, cutoffLen: 32, template: 'chat', trainOnInputs: false },
  rounds: 1,
  participantsPerRound: { fraction: 1, minimum: 2 },
  minUpdates: 1,
  roundDeadlineSeconds: 120,
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 16 * 1024 * 1024, maxExampleCount: 10_000 },
};

/**
 * The base model in-process test federations name. The coordinator never loads a model (the
 * operator's `fedit coordinator init` does, to make the initial adapter), so none is needed here.
 */
export const TEST_BASE_MODEL = { identity: `sha256:${'7'.repeat(64)}`, name: 'tiny-test' };

/** [out, in] of each LoRA target of the tiny test model (hidden 64, 4 heads, 2 KV heads, MLP 128). */
const TINY_TARGETS: Record<string, { module: string; out: number; in: number }> = {
  q_proj: { module: 'self_attn', out: 64, in: 64 },
  k_proj: { module: 'self_attn', out: 32, in: 64 },
  v_proj: { module: 'self_attn', out: 32, in: 64 },
  o_proj: { module: 'self_attn', out: 64, in: 64 },
  gate_proj: { module: 'mlp', out: 128, in: 64 },
  up_proj: { module: 'mlp', out: 128, in: 64 },
  down_proj: { module: 'mlp', out: 64, in: 128 },
};

/**
 * An initial adapter as PEFT makes one for the tiny model's two layers: A uniform in
 * +-1/sqrt(in_features) (from a seeded generator), B zero.
 */
export function testInitialAdapter(lora: { rank: number; targets: string[] }, seed = 1): Map<string, Tensor> {
  let state = seed >>> 0;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // an LCG: enough for test values
    return state / 2 ** 32;
  };
  const adapter = new Map<string, Tensor>();
  for (let layer = 0; layer < 2; layer++) {
    for (const target of lora.targets) {
      const { module, out, in: inF } = TINY_TARGETS[target];
      const path = `model.layers.${layer}.${module}.${target}`;
      const a = Float32Array.from({ length: lora.rank * inF }, () => (random() * 2 - 1) / Math.sqrt(inF));
      adapter.set(peftLoraTensorName(path, 'A'), tensorFromF32([lora.rank, inF], a));
      adapter.set(
        peftLoraTensorName(path, 'B'),
        tensorFromF32([out, lora.rank], new Float32Array(out * lora.rank)),
      );
    }
  }
  return adapter;
}

/** initFederation with the test base model and an initial adapter for `settings`' LoRA. */
export function initInProcess(root: string, settings: Partial<FederationSettings>, seed = 1) {
  return initFederation(root, {
    baseModel: TEST_BASE_MODEL,
    initialAdapter: testInitialAdapter(settings.lora ?? DEFAULT_SETTINGS.lora, seed),
    settings,
  });
}

/** Creates a federation folder (FAST_SETTINGS overridden by `settings`). */
export async function initTestFederation(
  t: ExecutionContext,
  settings: Partial<FederationSettings> = {},
): Promise<string> {
  const root = join(tempDir(t), 'federation');
  await initInProcess(root, { ...FAST_SETTINGS, ...settings });
  return root;
}

/**
 * What a participant needs to know to reach the coordinator (an invite, less the token), and the
 * federation's config it agreed to (round announcements are read from signed records and it).
 */
export interface Target {
  url: string;
  federation: string;
  coordinator: PublicIdentity;
  config: FederationConfig;
}

/** The coordinator event of type `T` (distributes over the union, unlike Extract, so that
 * `{ type: 'connected' | 'disconnected' }` yields its 'disconnected' half). */
export type EventOf<T extends CoordinatorEvent['type']> = CoordinatorEvent & { type: T };

export interface TestFederation {
  root: string;
  coordinator: RunningCoordinator;
  target(): Target;
  events: CoordinatorEvent[];
  /** The first event (seen or to come) matching `predicate`. */
  waitFor<T extends CoordinatorEvent['type']>(
    type: T,
    predicate?: (e: EventOf<T>) => boolean,
  ): Promise<EventOf<T>>;
  /** A fresh one-time invite token (through `createInvite`, as the operator makes them). */
  inviteToken(): Uint8Array;
  /** A token the invite file records as expired an hour ago. */
  expiredInviteToken(): Uint8Array;
  /** Stops the coordinator and starts it again on the same folder (a new port). */
  restart(): Promise<void>;
}

/** Starts a coordinator on `root` (or a new federation) in this process; stopped at teardown. */
export async function startTestFederation(
  t: ExecutionContext,
  settings: Partial<FederationSettings> = {},
  root?: string,
): Promise<TestFederation> {
  const dir = root ?? (await initTestFederation(t, settings));
  const recorder = new EventRecorder<CoordinatorEvent>();
  const start = () => startCoordinator({ dir, host: '127.0.0.1', port: 0, onEvent: recorder.record });
  const { identity, config } = openFederationDir(dir);
  const fed: TestFederation = {
    root: dir,
    coordinator: await start(),
    target: () => ({
      url: fed.coordinator.url,
      federation: config.id,
      coordinator: publicIdentity(identity),
      config,
    }),
    events: recorder.events,
    waitFor: (type, predicate = () => true) =>
      withinLimit(
        recorder.next((e) => e.type === type && predicate(e as never)) as never,
        () => `coordinator event ${type}; events so far: ${JSON.stringify(recorder.events)}`,
      ),
    inviteToken: () => parseInvite(createInvite(dir, { url: fed.coordinator.url })).token,
    expiredInviteToken: () => {
      const token = createInviteToken();
      const hour = 3_600_000;
      appendFileSync(
        join(dir, 'invites.jsonl'),
        JSON.stringify({
          type: 'created',
          tokenHash: tokenHash(token),
          createdAt: new Date(Date.now() - 2 * hour).toISOString(),
          expiresAt: new Date(Date.now() - hour).toISOString(),
        }) + '\n',
      );
      return token;
    },
    async restart() {
      await fed.coordinator.close();
      fed.coordinator = await start();
    },
  };
  t.teardown(() => fed.coordinator.close());
  return fed;
}

/** `promise`, or a rejection naming what was awaited once WAIT_LIMIT_MS pass. */
export function withinLimit<T>(promise: Promise<T>, what: () => string, ms = WAIT_LIMIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms waiting for ${what()}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// ---- what is stored ------------------------------------------------------------------------------

/** Every file of the blob store, by path relative to it, with the SHA-256 of its bytes. */
export type BlobSnapshot = Map<string, string>;

export function snapshotBlobs(root: string): BlobSnapshot {
  const blobs = federationPaths(root).blobs;
  const out: BlobSnapshot = new Map();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.set(relative(blobs, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
    }
  };
  walk(blobs);
  return out;
}

const blobPath = (hash: string) => join(hash.slice(7, 9), `${hash.slice(7)}.safetensors`);

export async function logRecords(root: string): Promise<RoundRecord[]> {
  return (await readRoundLog(federationPaths(root).log)).records;
}

/**
 * The stored state after a fault: the log verifies (chain, signatures, selection, every
 * aggregate recomputed from the blobs); every blob that was there before is unchanged; each new
 * blob is a counted update or an aggregate the log names, except `orphans` updates that were
 * counted in a round that then ended without being applied (aborted); no upload folder is left.
 */
export async function assertStoreIntact(
  t: ExecutionContext,
  root: string,
  before: BlobSnapshot,
  options: { orphans?: number } = {},
): Promise<void> {
  const report = await auditFederation(root);
  t.true(report.ok, `the log verifies: ${JSON.stringify(report.problems)}`);
  t.is(report.tornTail, undefined, 'no torn line');
  const after = snapshotBlobs(root);
  for (const [path, hash] of before) t.is(after.get(path), hash, `blob ${path} is unchanged`);
  const named = new Set<string>();
  for (const r of await logRecords(root)) {
    if (r.kind === 'round-closed') {
      named.add(blobPath(r.body.globalAdapterOut));
      if (r.body.serverStateOut) named.add(blobPath(r.body.serverStateOut));
      for (const u of r.body.updates) named.add(blobPath(u.updateHash));
    }
  }
  const added = [...after.keys()].filter((p) => !before.has(p));
  const unaccounted = added.filter((p) => !named.has(p));
  t.true(
    unaccounted.length <= (options.orphans ?? 0),
    `new blobs are counted updates, aggregates and server states the log names; unaccounted: ${unaccounted.join(', ')}`,
  );
  for (const path of named) t.true(after.has(path), `blob ${path} named by the log is stored`);
  const uploads = federationPaths(root).uploads;
  t.deepEqual(existsSync(uploads) ? readdirSync(uploads) : [], [], 'no upload is left on disk');
}
