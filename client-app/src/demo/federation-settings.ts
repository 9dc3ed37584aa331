// The demo federation's settings, in one place: what `fedit demo` creates its federation with, and
// what the offline proof simulates (the same LoRA, local training and aggregation rule).

import type { FederationSettings } from '@fedit/coordinator';
import { DEFAULT_AGGREGATION_RULE } from '@fedit/shared';
import { DEMO_LORA, DEMO_TRAINING } from './train.ts';

/** The rule the demo federation aggregates with, named in its config: FedIT's weighted mean. */
export const DEMO_AGGREGATION: FederationSettings['aggregation'] = { rule: DEFAULT_AGGREGATION_RULE };

/**
 * How the demo federation learns, a row of the simulation's RULE_PRESETS: FedIT's weighted mean
 * with SCAFFOLD's drift correction, as `fedit coordinator init` defaults to (docs/learning.md).
 */
export const DEMO_RULE = 'scaffold';

/** `fedit demo --secure-aggregation`: FedIT under secure aggregation (SCAFFOLD needs individual updates). */
export const DEMO_SECURE_RULE = 'secure';

/** The settings of a demo federation in which all `participants` take part in each of `rounds`. */
export function demoFederationSettings(participants: number, rounds: number): Partial<FederationSettings> {
  return {
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
    participantsPerRound: { fraction: 1, minimum: participants },
    minUpdates: participants,
    roundDeadlineSeconds: 900,
    aggregation: DEMO_AGGREGATION,
    limits: { maxUpdateNorm: 1000, maxUploadBytes: 64 * 1024 * 1024, maxExampleCount: 1_000_000 },
  };
}
