// Resumable training: the trainer's full state (LoRA tensors and Adam moments) plus where the run
// stands, saved so that a crash or Ctrl-C at any moment leaves either the previous checkpoint or the
// new one, never a torn one. The state goes to a new file first (state-<step>.safetensors, fsynced);
// progress.json, written atomically after it, is what names the current one.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  writeFileAtomic,
  readSafetensorsFile,
  tensorFromF32,
  tensorToF32,
  writeSafetensorsFile,
  type Tensor,
} from '@fedit/shared';
import type { TrainerState } from '@fedit/kernels';

export interface RunProgress {
  /** Identity of what is being trained (model, data, settings): a checkpoint only resumes the same run. */
  runId: string;
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  /** Tokens that counted in the loss so far. */
  tokens: number;
  /** Recent metrics, for the resumed progress display. */
  lastLoss?: number;
  stateFile: string;
}

/** Digest of the data files (names, sizes, bytes): read once per session, not once per round. */
export function dataFilesDigest(files: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f}|${statSync(f).size}|`).update(readFileSync(f));
  return `sha256:${h.digest('hex')}`;
}

/**
 * Identity of a run: a checkpoint resumes only the same model, the same `runKey` (the data's
 * digest and the caller's own settings) and the same training settings and initial adapter. What
 * does not change the result (threads, provider, callbacks) is left out.
 */
export function runIdentity(
  modelIdentity: string,
  runKey: string,
  settings: {
    initialAdapter?: ReadonlyMap<string, Float32Array>;
    scaffoldCorrection?: ReadonlyMap<string, Float32Array>;
  } & object,
): string {
  const h = createHash('sha256');
  h.update(`fedit-run-v2|${modelIdentity}|${runKey}|`);
  const {
    signal: _s,
    onEvent: _e,
    initialAdapter,
    scaffoldCorrection,
    restart: _r,
    threads: _t,
    provider: _p,
    ...rest
  } = settings as Record<string, unknown> & {
    initialAdapter?: ReadonlyMap<string, Float32Array>;
    scaffoldCorrection?: ReadonlyMap<string, Float32Array>;
  };
  h.update(JSON.stringify(rest));
  if (initialAdapter)
    for (const [name, v] of [...initialAdapter].sort())
      h.update(name).update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  // SCAFFOLD's correction changes every step: a checkpoint trained with another one is another run.
  if (scaffoldCorrection)
    for (const [name, v] of [...scaffoldCorrection].sort())
      h.update(`scaffold|${name}`).update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return `sha256:${h.digest('hex')}`;
}

export class CheckpointMismatchError extends FeditError {
  constructor(message: string) {
    super('CHECKPOINT_MISMATCH', message);
  }
}

export async function saveRunCheckpoint(
  dir: string,
  state: TrainerState,
  progress: Omit<RunProgress, 'stateFile'>,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const stateFile = `state-${String(state.step).padStart(8, '0')}.safetensors`;
  const tensors = new Map<string, Tensor>();
  for (const [name, data] of state.tensors)
    tensors.set(name, tensorFromF32([data.length], Float32Array.from(data)));
  await writeSafetensorsFile(join(dir, stateFile), tensors, { step: String(state.step) });
  await writeFileAtomic(
    join(dir, 'progress.json'),
    JSON.stringify({ ...progress, stateFile }, null, 2) + '\n',
  );
  // Older states are garbage once progress.json names the new one.
  for (const f of readdirSync(dir))
    if (f.startsWith('state-') && f !== stateFile) rmSync(join(dir, f), { force: true });
}

/** The saved run, or undefined when `dir` holds none. Throws when it holds another run's checkpoint. */
export async function loadRunCheckpoint(
  dir: string,
  runId: string,
): Promise<{ progress: RunProgress; state: TrainerState } | undefined> {
  const progressPath = join(dir, 'progress.json');
  if (!existsSync(progressPath)) return undefined;
  let progress: RunProgress;
  try {
    progress = JSON.parse(readFileSync(progressPath, 'utf8')) as RunProgress;
  } catch (err) {
    throw new FeditError(
      'CHECKPOINT_CORRUPT',
      `${progressPath}: not valid JSON (${(err as Error).message}); delete the checkpoint folder to start over`,
    );
  }
  if (progress.runId !== runId) {
    throw new CheckpointMismatchError(
      `${dir} holds a checkpoint of a different run (other model, data or settings); use another adapter output folder (fedit train --adapter-out), or --restart to discard it`,
    );
  }
  const parsed = await readSafetensorsFile(join(dir, progress.stateFile));
  const tensors = new Map<string, Float32Array>();
  for (const [name, t] of parsed.tensors) tensors.set(name, tensorToF32(t));
  return { progress, state: { step: progress.step, tensors } };
}
