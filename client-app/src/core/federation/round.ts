// One round this participant was selected for:
//
//   an update kept on disk from before (same global adapter)? -> resume its upload
//   else: fetch the global adapter (cached) -> check it fits the federation's LoRA
//         -> with SCAFFOLD: fetch the server state holding c, read this participant's c_i
//         -> measure it on the held-out slice (held-out.ts), keep the figures in the home
//         -> train from it (truncated to the participant's own LoRA rank when it chose a lower
//            one, rank.ts) on the session's model and rows, in memory, with the session's kept
//            trainer reset to it (train-lora.ts), SCAFFOLD's correction c - c_i added
//         -> build and sign the update from the trained tensors, keep it on disk (with SCAFFOLD,
//            c_i+ beside it: control.ts)
//   -> upload (round-io.ts) -> once the coordinator acknowledged it: c_i+ becomes c_i, and the
//      kept update is dropped
//
// The download, held-out measure and training (trainOnGlobal) are shared with a secure round
// (secure-round.ts), which masks the delta instead of keeping and sending the update.
// Only the envelope and sealed chunks of the trained LoRA tensors leave the machine: never the
// data, never a plaintext tensor. The update is kept on disk until committed so that a dropped
// connection or a restarted client resumes the upload instead of training again.
import { join } from 'node:path';
import { loraTensorSpecs, type LoadedModel, type LoraConfig } from '@fedit/kernels';
import {
  FeditError,
  tensorFromF32,
  tensorToF32,
  type ContentHash,
  type HeldOutFigures,
  type Tensor,
} from '@fedit/shared';
import { trainLora, type LoraRunSettings } from '../train/train-lora.ts';
import { FederationError, isTransient } from './errors.ts';
import type { RoundHistoryEntry } from './events.ts';
import {
  adoptNextControl,
  scaffoldCorrection,
  keepNextControl,
  nextOwnControl,
  readOwnControl,
  serverControl,
  trainedShapes,
  type ControlValues,
} from './control.ts';
import { heldOutRound, measureAndKeep } from './held-out.ts';
import { federationLora } from './settings.ts';
import { adapterAtRank } from './rank.ts';
import { fetchRoundAdapter, fetchRoundControl, uploadUpdate, type RoundContext } from './round-io.ts';
import { roundDir } from './store.ts';
import {
  buildUpdate,
  dropPendingUpload,
  loadPendingUpload,
  savePendingUpload,
  type PendingUpload,
} from './update.ts';

/** Codes with which the coordinator says the round no longer takes this update. */
const ROUND_GONE = new Set(['ROUND_CLOSED', 'ROUND_QUORUM_REACHED', 'UPDATE_STALE', 'UPDATE_NOT_SELECTED']);

/** Combines a participant id and a round's seed into the seed of this participant's local run. */
export function participantSeed(roundSeed: number, participantId: string): number {
  const own = Number.parseInt(participantId.slice(0, 8), 16) >>> 0;
  return (Math.imul(roundSeed >>> 0, 0x9e3779b1) ^ own) >>> 0;
}

/**
 * Takes part in the round: trains (or resumes a kept update) and uploads, filling in `entry`. A
 * failure the round cannot recover from is a warning and ends the task; a bug is thrown.
 */
export async function runRound(ctx: RoundContext, entry: RoundHistoryEntry): Promise<void> {
  const { session, open, signal } = ctx;
  const dir = roundDir(session.home, session.membership.federation, open.round);
  try {
    let pending = await keptUpdate(ctx, dir);
    if (pending) {
      ctx.events.emit('warning', `resuming the upload of round ${open.round} kept from before`);
    } else {
      pending = await trainRound(ctx, dir);
      if (!pending) return; // stopped during training
    }
    entry.trainLoss = pending.trainLoss;
    const figures =
      pending.envelope.heldOut && heldOutRound(open.round, open.globalAdapterHash, pending.envelope.heldOut);
    if (figures) {
      entry.heldOutLoss = figures.loss;
      if (figures.exactMatch !== undefined) entry.heldOutExactMatch = figures.exactMatch;
    }
    entry.examples = pending.envelope.exampleCount;
    if (signal.aborted) return;
    ctx.setStatus({
      status: 'uploading',
      round: open.round,
      message: `sending the update of round ${open.round}`,
    });
    const outcome = await uploadUpdate(ctx, pending);
    if (outcome === 'stopped') return;
    await adoptNextControl(dir, session.home, session.membership.federation);
    await dropPendingUpload(dir);
    entry.uploaded = true;
    ctx.setStatus({
      status: 'done-round',
      round: open.round,
      message:
        outcome === 'committed'
          ? `update of round ${open.round} sent; waiting for the round to close`
          : `the coordinator already counted this participant's update for round ${open.round}`,
    });
  } catch (error) {
    if (signal.aborted && (isTransient(error) || !(error instanceof FeditError))) return;
    if (!(error instanceof FeditError)) throw error; // a bug: let it stop the participant
    const remote = error instanceof FederationError && error.remote;
    entry.error = error.message;
    if (remote || ROUND_GONE.has(error.code)) await dropPendingUpload(dir);
    ctx.events.emit('warning', `round ${open.round}: ${error.message}`);
    ctx.setStatus({ status: 'waiting', round: open.round, message: 'waiting for the next round' });
  }
}

/** The update kept in `dir` for this round's global adapter, if one is (others are dropped). */
async function keptUpdate(ctx: RoundContext, dir: string): Promise<PendingUpload | undefined> {
  const { session, open } = ctx;
  let pending: PendingUpload | undefined;
  try {
    pending = await loadPendingUpload(dir, {
      identity: session.identity,
      federation: session.membership.federation,
      round: open.round,
    });
  } catch (error) {
    ctx.events.emit('warning', `${(error as Error).message}; training again`);
    await dropPendingUpload(dir);
  }
  if (pending && pending.envelope.globalAdapterHash !== open.globalAdapterHash) {
    await dropPendingUpload(dir);
    return undefined;
  }
  return pending;
}

/** Downloads the global adapter, trains from it, and keeps the signed update on disk. */
async function trainRound(ctx: RoundContext, dir: string): Promise<PendingUpload | undefined> {
  const { session, open } = ctx;
  const trained = await trainOnGlobal(ctx, dir);
  if (!trained) return undefined;
  const { globalValues, own, tensors, scaffold, trainLoss, heldOut } = trained;
  if (scaffold) {
    const { steps, learningRate: lr } = open.training;
    const next = nextOwnControl({ ...scaffold, global: globalValues, trained: tensors, steps, lr });
    // Before the update is kept: a kept update always has its c_i+ beside it.
    await keepNextControl(dir, next, scaffold.shapes);
  }
  const pending = buildUpdate({
    identity: session.identity,
    federation: session.membership.federation,
    round: open.round,
    globalAdapterHash: open.globalAdapterHash,
    exampleCount: session.data.rows.length,
    tensors: f32Tensors(tensors, own.shapes),
    trainLoss,
    heldOut,
    chunkBytes: session.options.chunkBytes,
  });
  await savePendingUpload(dir, pending);
  return pending;
}

/** What one round's local training produced, from the global adapter it started at. */
export interface TrainedRound {
  global: Map<string, Tensor>;
  globalValues: Map<string, Float32Array>;
  /** The global adapter at this participant's rank (what it trained from). */
  own: ReturnType<typeof adapterAtRank>;
  tensors: Map<string, Float32Array>;
  scaffold: Awaited<ReturnType<typeof roundControl>> | undefined;
  trainLoss: number;
  heldOut: HeldOutFigures | undefined;
}

/**
 * Downloads the global adapter, measures it on the held-out slice and trains from it (plain and
 * secure rounds alike); undefined when stopped during training.
 */
export async function trainOnGlobal(ctx: RoundContext, dir: string): Promise<TrainedRound | undefined> {
  const { session, open } = ctx;
  ctx.setStatus({
    status: 'downloading',
    round: open.round,
    message: `fetching the global adapter of round ${open.round}`,
  });
  const global = await fetchRoundAdapter(ctx);
  const lora = federationLora(session.settings);
  checkAdapterSchema(global, session.model, lora, open.globalAdapterHash);
  const globalValues = new Map<string, Float32Array>();
  for (const [name, tensor] of global) globalValues.set(name, tensorToF32(tensor));
  // A participant of a lower rank trains the global adapter truncated to it (rank.ts).
  const own = adapterAtRank(global, globalValues, session.rank, lora.rank);
  const scaffold = session.settings.training.scaffold ? await roundControl(ctx, global) : undefined;
  const heldOut = await measureRoundAdapter(ctx, globalValues);

  ctx.setStatus({ status: 'training', round: open.round, message: `training round ${open.round}` });
  const result = await trainFromSession(
    ctx,
    join(dir, 'checkpoint'),
    roundSettings(
      ctx,
      { ...lora, rank: session.rank },
      own.values,
      scaffold && scaffoldCorrection(scaffold.c, scaffold.own),
    ),
  );
  if (!result.completed) return undefined;
  const tensors = result.tensors!;
  if (tensors.size !== global.size || [...global.keys()].some((n) => !tensors.has(n))) {
    throw new FederationError(
      'FEDERATION_ADAPTER',
      "the trained adapter does not hold the global adapter's tensors",
    );
  }
  for (const [name, values] of tensors) {
    if (!values.every(Number.isFinite)) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the trained tensor ${name} holds a value that is not finite`,
      );
    }
  }
  const trainLoss = result.losses.reduce((s, l) => s + l, 0) / Math.max(1, result.losses.length);
  return { global, globalValues, own, tensors, scaffold, trainLoss, heldOut };
}

/** The round's global adapter on the held-out slice (held-out.ts); undefined without a slice. */
async function measureRoundAdapter(
  ctx: RoundContext,
  globalValues: ReadonlyMap<string, Float32Array>,
): Promise<HeldOutFigures | undefined> {
  const { session, open } = ctx;
  ctx.setStatus({
    status: 'training',
    round: open.round,
    message: `measuring round ${open.round}'s global adapter on ${session.data.heldOut.length} held-out examples`,
  });
  return measureAndKeep(session, open.round, open.globalAdapterHash, globalValues);
}

/** SCAFFOLD's c (from the state the round announced) and this participant's c_i, for the trained tensors. */
async function roundControl(
  ctx: RoundContext,
  global: Map<string, Tensor>,
): Promise<{ shapes: Map<string, readonly number[]>; c: ControlValues; own: ControlValues }> {
  const { session } = ctx;
  const shapes = trainedShapes(global, session.settings.training.freezeLoraA);
  const state = ctx.open.control === undefined ? undefined : await fetchRoundControl(ctx);
  const own = await readOwnControl(session.home, session.membership.federation, shapes);
  return { shapes, c: serverControl(state, shapes), own };
}

/**
 * Trains on the session's model and rows. A checkpoint of other settings in this round's folder
 * (the federation changed them, or one torn by a crash) is discarded and training starts over.
 */
async function trainFromSession(ctx: RoundContext, checkpointDir: string, settings: LoraRunSettings) {
  const { session } = ctx;
  const { modelDir, dataFiles, format } = session.options;
  const { template, trainOnInputs } = session.settings.training;
  const inputs = {
    model: session.model,
    rows: { train: session.data.rows, heldOut: [] },
    checkpointDir,
    trainers: session.trainers,
    runKey: `${session.data.digest}|${JSON.stringify({ modelDir, dataFiles, format, template, trainOnInputs })}`,
  };
  try {
    return await trainLora(inputs, settings);
  } catch (error) {
    const stale =
      error instanceof FeditError &&
      (error.code === 'CHECKPOINT_MISMATCH' || error.code === 'CHECKPOINT_CORRUPT');
    if (!stale) throw error;
    return await trainLora(inputs, { ...settings, restart: true });
  }
}

/**
 * The round's training settings: the federation's LoRA, prompt cutoff and local-training rule
 * (FFA-LoRA's frozen A, FedProx's mu, anchored at the round's global adapter, SCAFFOLD's
 * correction), the round's steps and seed.
 */
function roundSettings(
  ctx: RoundContext,
  lora: LoraConfig,
  initialAdapter: ReadonlyMap<string, Float32Array>,
  correction: ControlValues | undefined,
): LoraRunSettings {
  const { session, open } = ctx;
  const { cutoffLen, freezeLoraA, proximalMu } = session.settings.training;
  return {
    lora,
    cutoffLen,
    batchSize: open.training.batchSize,
    epochs: 1,
    maxSteps: open.training.steps,
    lr: open.training.learningRate,
    schedule: 'constant',
    checkpointEvery: 10,
    seed: participantSeed(open.training.seed, session.membership.participantId),
    provider: session.options.provider,
    threads: session.options.threads,
    initialAdapter,
    freezeLoraA,
    proximalMu,
    scaffoldCorrection: correction,
    signal: ctx.signal,
    onEvent: (e) => {
      if (e.type === 'step') {
        const { step: done, totalSteps: total, loss, tokensPerSecond, etaSeconds } = e;
        const progress = { round: open.round, phase: 'training' as const, done, total, loss };
        ctx.events.emit('progress', { ...progress, tokensPerSecond, etaSeconds });
      } else if (e.type === 'ready') ctx.events.emit('device', e.provider);
      else if (e.type === 'warning') ctx.events.emit('warning', e.message);
    },
  };
}

/** The trained values (checked finite by trainOnGlobal) as F32 tensors of `shapes` (the global adapter's at this participant's rank). */
function f32Tensors(
  trained: Map<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, values] of trained) out.set(name, tensorFromF32(shapes.get(name)!, values));
  return out;
}

/** Throws FEDERATION_ADAPTER unless the global adapter has exactly the tensors the federation's LoRA calls for. */
function checkAdapterSchema(
  global: Map<string, Tensor>,
  model: LoadedModel,
  lora: LoraConfig,
  hash: ContentHash,
): void {
  const specs = loraTensorSpecs(model.config, lora);
  for (const spec of specs) {
    const tensor = global.get(spec.name);
    if (!tensor) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the global adapter ${hash} lacks ${spec.name}, which the federation's LoRA settings call for`,
      );
    }
    if (tensor.shape.join(',') !== spec.shape.join(',')) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the global adapter ${hash} has ${spec.name} of shape [${tensor.shape}], but the federation's LoRA settings call for [${spec.shape}]`,
      );
    }
  }
  if (global.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    const extra = [...global.keys()].find((n) => !known.has(n));
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `the global adapter ${hash} has ${extra}, which the federation's LoRA settings do not call for`,
    );
  }
}
