// SCAFFOLD on the participant's side (the server's step and the paper are in
// shared/src/aggregation/scaffold.ts). The participant keeps its own control variate c_i, never
// sent anywhere:
//
//   <home>/scaffold/<federation>.safetensors    c_i: F32 tensors named like the adapter's trained
//                                               tensors (every lora_B, and every lora_A unless A is
//                                               frozen); absent = zeros (before its first round)
//   <roundDir>/control-next.safetensors         c_i+ of the round's update, until the update counted
//
// A round: c (from the server state the round announces, hash-checked; zeros before the first
// round closed) and c_i give the correction c - c_i, which every local step applies after AdamW
// (train-lora.ts scaffoldCorrection); after K steps at rate lr from x (the global adapter) to y
// (the trained adapter), option II gives c_i+, element by element:
//   correction[j] = float32(c[j] - c_i[j])
//   c_i+[j]       = float32((c_i[j] - c[j]) + (x[j] - y[j]) / (K * lr))    binary64, in this order
// c_i+ is written next to the kept update and replaces c_i only once the coordinator counted the
// update (its commit acknowledged, or already counted on a resumed upload): an update that never
// counted leaves c_i as it was, since the server's c moved without it. Every file is written
// atomically (temporary file, fsync, rename), so a crash leaves c_i or c_i+, never a mix.
import { readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  controlName,
  parseSafetensors,
  serializeSafetensors,
  syncDirectory,
  tensorFromF32,
  tensorToF32,
  type Tensor,
} from '@fedit/shared';
import { FederationError } from './errors.ts';
import { ensurePrivateDir, ownControlPath, writePrivateFile } from './store.ts';

export type ControlValues = Map<string, Float32Array>;

/** The tensors local training changes, with their shapes: SCAFFOLD's control variates cover these. */
export function trainedShapes(
  global: ReadonlyMap<string, Tensor>,
  freezeLoraA: boolean | undefined,
): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  for (const [name, tensor] of global) {
    if (freezeLoraA && name.includes('.lora_A.')) continue;
    out.set(name, tensor.shape);
  }
  return out;
}

const nextControlPath = (roundDir: string) => join(roundDir, 'control-next.safetensors');

const zeros = (shapes: ReadonlyMap<string, readonly number[]>): ControlValues =>
  new Map([...shapes].map(([name, shape]) => [name, new Float32Array(shape.reduce((a, b) => a * b, 1))]));

/**
 * The server's c for the trained tensors, from the server state the round announced (its "c:"
 * tensors), or zeros when the round announced none.
 */
export function serverControl(
  state: ReadonlyMap<string, Tensor> | undefined,
  shapes: ReadonlyMap<string, readonly number[]>,
): ControlValues {
  if (!state) return zeros(shapes);
  const out: ControlValues = new Map();
  for (const [name, shape] of shapes) {
    const tensor = state.get(controlName(name));
    if (!tensor || tensor.shape.join(',') !== shape.join(',')) {
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `the round's server state lacks ${controlName(name)} of shape [${shape}], SCAFFOLD's control variate`,
      );
    }
    out.set(name, tensorToF32(tensor));
  }
  return out;
}

/** c_i kept for `federation` (zeros before the first counted update), checked against `shapes`. */
export async function readOwnControl(
  home: string,
  federation: string,
  shapes: ReadonlyMap<string, readonly number[]>,
): Promise<ControlValues> {
  const path = ownControlPath(home, federation);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return zeros(shapes);
    throw error;
  }
  const bad = (problem: string, cause?: unknown) =>
    new FederationError(
      'FEDERATION_HOME',
      `${path} is corrupted: ${problem}; remove it to restart this participant's SCAFFOLD control variate from zeros`,
      { cause },
    );
  let tensors: Map<string, Tensor>;
  try {
    tensors = parseSafetensors(bytes, path).tensors;
  } catch (error) {
    throw bad((error as Error).message, error);
  }
  const out: ControlValues = new Map();
  for (const [name, shape] of shapes) {
    const tensor = tensors.get(name);
    if (!tensor || tensor.shape.join(',') !== shape.join(','))
      throw bad(`it lacks ${name} of shape [${shape}]`);
    const values = tensorToF32(tensor);
    if (!values.every(Number.isFinite)) throw bad(`${name} holds a value that is not finite`);
    out.set(name, values);
  }
  if (tensors.size !== shapes.size) throw bad(`it holds ${tensors.size} tensors, expected ${shapes.size}`);
  return out;
}

/** The correction c - c_i local training applies to each step (the header's arithmetic). */
export function scaffoldCorrection(c: ControlValues, own: ControlValues): ControlValues {
  const out: ControlValues = new Map();
  for (const [name, cValues] of c) {
    const ci = own.get(name)!;
    out.set(
      name,
      cValues.map((v, j) => v - ci[j]),
    );
  }
  return out;
}

/** Option II's c_i+ after `steps` steps at rate `lr` from `global` to `trained` (the header's arithmetic). */
export function nextOwnControl(options: {
  c: ControlValues;
  own: ControlValues;
  global: ReadonlyMap<string, Float32Array>;
  trained: ReadonlyMap<string, Float32Array>;
  steps: number;
  lr: number;
}): ControlValues {
  const { c, own, global, trained, steps, lr } = options;
  const stepSize = steps * lr;
  const out: ControlValues = new Map();
  for (const [name, ci] of own) {
    const cValues = c.get(name)!;
    const x = global.get(name)!;
    const y = trained.get(name)!;
    const next = new Float32Array(ci.length);
    for (let j = 0; j < ci.length; j++) next[j] = ci[j] - cValues[j] + (x[j] - y[j]) / stepSize;
    if (!next.every(Number.isFinite))
      throw new FederationError('FEDERATION_ADAPTER', `SCAFFOLD's c_i+ of ${name} is not finite`);
    out.set(name, next);
  }
  return out;
}

function controlBytes(values: ControlValues, shapes: ReadonlyMap<string, readonly number[]>): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, v] of values) tensors.set(name, tensorFromF32(shapes.get(name)!, v));
  return serializeSafetensors(tensors);
}

/** Keeps c_i+ beside the round's kept update, until the update counted. */
export async function keepNextControl(
  roundDir: string,
  values: ControlValues,
  shapes: ReadonlyMap<string, readonly number[]>,
): Promise<void> {
  await ensurePrivateDir(roundDir);
  await writePrivateFile(nextControlPath(roundDir), controlBytes(values, shapes));
}

/**
 * The round's update counted: its c_i+ becomes this participant's c_i (an atomic rename). Nothing
 * to do when the round kept none (no SCAFFOLD, or adopted already).
 */
export async function adoptNextControl(roundDir: string, home: string, federation: string): Promise<void> {
  const path = ownControlPath(home, federation);
  await ensurePrivateDir(home);
  await ensurePrivateDir(dirname(path));
  try {
    await rename(nextControlPath(roundDir), path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  await syncDirectory(dirname(path));
}
