// The aggregation rules a simulation can name, as federation settings patches: each row is merged
// over the demo federation's settings (see mergeSettings), so choosing a rule is choosing a row.
// A rule that needs local-training changes (a frozen A factor, a proximal term) says so in its
// patch's `training` section.

import { FeditError } from '@fedit/shared';
import type { FederationSettings } from '@fedit/coordinator';
import { demoFederationSettings } from '../demo/federation-settings.ts';
import { mergeSettings, type SettingsPatch } from '../operator/settings-patch.ts';

export { mergeSettings, type SettingsPatch };

export const RULE_PRESETS: Record<string, SettingsPatch> = {
  /** FedIT (Zhang et al. 2024): the example-count weighted mean of the LoRA tensors. */
  fedit: { aggregation: { rule: 'fedit' } },
  /** FedAvg with equal weights: the plain mean of the LoRA tensors. */
  'fedavg-uniform': { aggregation: { rule: 'fedavg-uniform' } },
  /** FFA-LoRA (Sun et al. 2024): lora_A frozen at the shared initialisation, only B trained and averaged. */
  ffa: { training: { freezeLoraA: true }, aggregation: { rule: 'fedit' } },
  /** The mean of the products B·A, re-factored to the federation's rank by truncated SVD. */
  'product-svd': { aggregation: { rule: 'product-svd' } },
  /** FedAvgM (Hsu et al. 2019): server momentum on the round's mean update. */
  fedavgm: { aggregation: { rule: 'fedit', serverOptimizer: { kind: 'avgm', lr: 1, beta1: 0.7 } } },
  /** FedAdam (Reddi et al. 2021): an Adam step on the server with the round's mean update. */
  fedadam: { aggregation: { rule: 'fedit', serverOptimizer: { kind: 'adam', lr: 0.02 } } },
  /** FedProx (Li et al. 2020): a proximal term pulls local training toward the global adapter. */
  fedprox: { training: { proximalMu: 0.1 }, aggregation: { rule: 'fedit' } },
  /** SCAFFOLD (Karimireddy et al. 2020): control variates correct each participant's local drift. */
  scaffold: { training: { scaffold: true }, aggregation: { rule: 'fedit' } },
  /** FFA-LoRA with server momentum. */
  'ffa-avgm': {
    training: { freezeLoraA: true },
    aggregation: { rule: 'fedit', serverOptimizer: { kind: 'avgm', lr: 1, beta1: 0.7 } },
  },
  /** FedAvg with a server learning rate of 3 (Reddi et al. 2021's server SGD). */
  'server-sgd3': { aggregation: { rule: 'fedit', serverOptimizer: { kind: 'sgd', lr: 3 } } },
  'server-sgd2': { aggregation: { rule: 'fedit', serverOptimizer: { kind: 'sgd', lr: 2 } } },
  /**
   * FedIT's weighted mean under secure aggregation (SecAgg+, Bell et al. 2020): the coordinator
   * unmasks only the sum. No SCAFFOLD and no adaptive clipping (both need individual updates). The
   * scale 2^-18 passes the overflow condition for the demo's weight cap (80) and up to 100
   * participants with the clip range 1 (every demo update's coordinates are far inside it).
   */
  secure: {
    training: { scaffold: false },
    aggregation: { rule: 'fedit' },
    secureAggregation: {
      graph: 'secagg+',
      thresholdFraction: 0.7,
      clipRange: 1,
      scaleBits: 18,
      maxParticipants: 100,
      phaseSeconds: 120,
    },
  },
  /** Coordinate-wise median (Yin et al. 2018). */
  median: { aggregation: { rule: 'median' } },
  /** Coordinate-wise trimmed mean (Yin et al. 2018), a fifth dropped at each end. */
  'trimmed-mean': { aggregation: { rule: 'trimmed-mean', trimFraction: 0.2 } },
  /** Multi-Krum (Blanchard et al. 2017): the two updates closest to each other, averaged. */
  krum: { aggregation: { rule: 'krum', byzantine: 1, krumSelect: 2 } },
};

/** The patch of a preset, or an error listing the known ones. */
export function rulePreset(name: string): SettingsPatch {
  const preset = Object.hasOwn(RULE_PRESETS, name) ? RULE_PRESETS[name] : undefined;
  if (!preset) {
    throw new FeditError(
      'SIMULATION_OPTIONS',
      `unknown rule '${name}'; known: ${Object.keys(RULE_PRESETS).join(', ')}`,
    );
  }
  return preset;
}

/** The settings a simulated federation runs with: the demo's, for its size, with `patch` over them. */
export function simulationSettings(
  participants: number,
  rounds: number,
  patch: SettingsPatch = {},
): Partial<FederationSettings> {
  return mergeSettings(demoFederationSettings(participants, rounds), patch);
}
