// What taking part costs on this computer, before joining: minutes per round from a few measured
// training steps (./device-measure.ts, on the device training would use), megabytes sent per round
// and disk, from the size of the federation's adapter on this base model.
//
//   minutes per round  = localSteps × secondsPerStep / 60        (the measured median step)
//   sent per round     = adapterBytes                            (one float32 update per round
//                                                                 trained in; encryption and framing
//                                                                 add a few hundred bytes)
//   disk               = adapterBytes × (ADAPTER_CACHE_KEEP + 4)  (the newest global adapters kept,
//                                                                 a training checkpoint: LoRA and
//                                                                 AdamW's two moments, and an update
//                                                                 waiting to be sent)
//
// The base model itself is not counted: the person already has it on disk.

import { ADAPTER_CACHE_KEEP } from '../core/federation/adapters.ts';
import type { FederationSettings } from '../core/federation/settings.ts';
import type { CostEstimate, DataSelection, ModelCheck } from './api.ts';
import { measureJob, type MeasureJob } from './device.ts';
import { AppError } from './validate.ts';
import type { DeviceMeasurement } from './worker-protocol.ts';

/** Copies of the adapter on disk besides the cache: checkpoint LoRA, its two AdamW moments, a pending update. */
const WORKING_COPIES = 4;

export function estimateCost(settings: FederationSettings, measured: DeviceMeasurement): CostEstimate {
  const localSteps = settings.training.localSteps ?? 0;
  const mb = (bytes: number) => bytes / 1e6;
  return {
    device: measured.startedOn,
    measuredSteps: measured.steps,
    secondsPerStep: measured.secondsPerStep,
    localSteps,
    minutesPerRound: (localSteps * measured.secondsPerStep) / 60,
    megabytesSentPerRound: mb(measured.adapterBytes),
    diskMegabytes: mb(measured.adapterBytes * (ADAPTER_CACHE_KEEP + WORKING_COPIES)),
  };
}

/**
 * Measures what joining the federation of `settings` would cost with the `chosen` model and data,
 * on the provider training would use (the steps run as a job of the training worker: `request`).
 */
export async function measureCost(
  settings: FederationSettings,
  chosen: { model: ModelCheck | undefined; data: DataSelection | undefined },
  on: { provider: 'cpu' | 'webgpu'; threads: number },
  request: (job: MeasureJob) => Promise<DeviceMeasurement>,
): Promise<CostEstimate> {
  const { model, data } = chosen;
  if (!model?.ok || !data) {
    throw new AppError(
      'APP_NOT_READY',
      "choose this federation's base model and your data first (steps 2 and 3)",
    );
  }
  const run = { modelDir: model.dir, dataFiles: data.files, threads: on.threads };
  return estimateCost(settings, await request({ ...measureJob(run, settings), provider: on.provider }));
}
