// Tiny random checkpoints for tests, written in Hugging Face format and loaded through the real
// checkpoint code (nothing is downloaded).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, type LlamaConfig } from '../../src/model/config.ts';
import { loadCheckpoint, writeHfCheckpoint, type LoadedModel } from '../../src/model/checkpoint.ts';
import { randomLlamaTensors, uniformSampler } from '../../src/model/random.ts';
import type { TokenRow } from '../../src/train/batch.ts';

export interface TinyModel extends LoadedModel {
  cleanup(): void;
}

export async function tinyModel(
  overrides: Partial<LlamaConfig> = {},
  options: { dtype?: 'float32' | 'float64'; seed?: number; std?: number } = {},
): Promise<TinyModel> {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-tiny-'));
  const config = { ...PRESETS.tiny, ...overrides };
  await writeHfCheckpoint(dir, config, randomLlamaTensors(config, options.seed ?? 0, options.std ?? 0.1));
  const loaded = await loadCheckpoint(dir, { dtype: options.dtype ?? 'float32' });
  return { ...loaded, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `count` rows of random tokens, every position a target (for loss-goes-down checks). */
export function randomRows(vocab: number, count: number, length: number, seed = 1): TokenRow[] {
  const rand = uniformSampler(seed);
  return Array.from({ length: count }, () => {
    const ids = Array.from({ length }, () => Math.floor(rand() * vocab));
    return { inputIds: ids, labels: ids };
  });
}
