// The aggregation rules a simulation can name, as federation settings patches: each row is merged
// over the demo federation's settings (see mergeSettings), so choosing a rule is choosing a row.
// A rule that needs local-training changes (a frozen A factor, a proximal term) says so in its
// patch's `training` section.

import { FeditError } from '@fedit/shared';
import type { FederationSettings } from '@fedit/coordinator';
import { demoFederationSettings } from '../demo/federation-settings.ts';

export const RULE_PRESETS: Record<string, Partial<FederationSettings>> = {
  /** FedIT (Zhang et al. 2024): the example-count weighted mean of the LoRA tensors. */
  fedit: { aggregation: { rule: 'fedit' } },
  /** FedAvg with equal weights: the plain mean of the LoRA tensors. */
  'fedavg-uniform': { aggregation: { rule: 'fedavg-uniform' } },
};

/** The patch of a preset, or an error listing the known ones. */
export function rulePreset(name: string): Partial<FederationSettings> {
  const preset = Object.hasOwn(RULE_PRESETS, name) ? RULE_PRESETS[name] : undefined;
  if (!preset) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `unknown rule '${name}'; known: ${Object.keys(RULE_PRESETS).join(', ')}`,
    );
  }
  return preset;
}

/**
 * `patch` over `base`, one level deep: a section the patch names (training, aggregation, lora,
 * limits, ...) is merged field by field, so `{ training: { lr: 1e-3 } }` keeps the other local
 * training settings; any other value replaces the base's.
 */
export function mergeSettings(
  base: Partial<FederationSettings>,
  patch: Partial<FederationSettings>,
): Partial<FederationSettings> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const old = out[key];
    out[key] = isSection(old) && isSection(value) ? { ...old, ...value } : value;
  }
  return out as Partial<FederationSettings>;
}

function isSection(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The settings a simulated federation runs with: the demo's, for its size, with `patch` over them. */
export function simulationSettings(
  participants: number,
  rounds: number,
  patch: Partial<FederationSettings> = {},
): Partial<FederationSettings> {
  return mergeSettings(demoFederationSettings(participants, rounds), patch);
}
