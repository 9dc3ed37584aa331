// PLACEHOLDER until the robust branch lands (same signatures).
import type { TensorValues } from './schema.ts';

export function adaptiveClipBound(norms: readonly number[], multiplier: number): number {
  const s = [...norms].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return multiplier * median;
}

export function clipScale(norm: number, bound: number): number {
  return norm === 0 ? 1 : Math.min(1, bound / norm);
}

export function clipToward(
  update: TensorValues,
  global: TensorValues,
  scale: number,
): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [name, x] of update) {
    const g = global.get(name)!;
    const v = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) v[i] = scale === 1 ? x[i] : g[i] + scale * (x[i] - g[i]);
    out.set(name, v);
  }
  return out;
}
