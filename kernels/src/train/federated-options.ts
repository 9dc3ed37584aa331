// The federated options of local training, as the Trainer takes them (the graphs' side is in
// graphs.ts): FFA-LoRA's frozen A, FedProx's proximal term, SCAFFOLD's gradient or step
// correction. Here: what they are, which graph terms they compile in, and their validation at the
// edge.

import { FeditError } from '@fedit/shared';
import type { GradientTerms, ParamSpec } from './graphs.ts';

type TensorValues = ReadonlyMap<string, Float32Array | Float64Array>;

export interface FederatedTrainingOptions {
  /** FFA-LoRA (Sun et al. 2024): train only the B factors; every lora_A stays bit-identical. */
  freezeLoraA?: boolean;
  /**
   * FedProx (Li et al. 2020): adds mu * (theta - anchor) to each trained tensor's gradient, the
   * gradient of mu/2 ||theta - anchor||^2. The anchor defaults to the values training starts from
   * (`initial`: the round's global adapter).
   */
  proximal?: { mu: number; anchor?: TensorValues };
  /** SCAFFOLD (Karimireddy et al. 2020): a fixed offset (c - c_i) added to each trained tensor's gradient. */
  gradientCorrection?: TensorValues;
  /**
   * SCAFFOLD in AdamW's direction space: each step moves each trained tensor a further
   * -lr * (c - c_i) after AdamW (graphs.ts says why). Not with gradientCorrection.
   */
  stepCorrection?: TensorValues;
}

/** Trainer options that do not fit the model or the tensors trained; the message names the field. */
export class TrainingOptionsError extends FeditError {
  constructor(message: string) {
    super('TRAINING_OPTIONS', message);
  }
}

/** Which gradient terms the step graphs compile in for these options. */
export function gradientTermsOf(o: FederatedTrainingOptions): GradientTerms {
  return {
    proximal: o.proximal !== undefined,
    correction: o.gradientCorrection !== undefined,
    ...(o.stepCorrection !== undefined && { stepCorrection: true }),
  };
}

/** Refuses federated options that do not fit the tensors trained, naming the field. */
export function checkFederatedOptions(
  o: FederatedTrainingOptions & { lora?: unknown },
  specs: readonly ParamSpec[],
): void {
  if (o.freezeLoraA && !o.lora)
    throw new TrainingOptionsError('freezeLoraA: there is no LoRA to freeze the A factors of');
  const trained = specs.filter((s) => !s.frozen);
  if (o.proximal) {
    const { mu, anchor } = o.proximal;
    if (!(Number.isFinite(mu) && mu >= 0))
      throw new TrainingOptionsError(`proximal.mu must be a finite number >= 0, got ${mu}`);
    if (anchor) checkTensorValues('proximal.anchor', anchor, trained);
  }
  if (o.gradientCorrection) checkTensorValues('gradientCorrection', o.gradientCorrection, trained);
  if (o.stepCorrection) {
    if (o.gradientCorrection)
      throw new TrainingOptionsError(
        'stepCorrection: give SCAFFOLD one correction, not gradientCorrection too',
      );
    checkTensorValues('stepCorrection', o.stepCorrection, trained);
  }
}

/** `values` holds a tensor of the right size for each trained tensor, and nothing else. */
function checkTensorValues(field: string, values: TensorValues, trained: readonly ParamSpec[]): void {
  const byName = new Map(trained.map((s) => [s.name, s]));
  for (const [name, v] of values) {
    const s = byName.get(name);
    if (!s) throw new TrainingOptionsError(`${field} has ${name}, which is not a trained tensor`);
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (v.length !== size)
      throw new TrainingOptionsError(
        `${field} ${name} has ${v.length} values, expected ${size} for shape [${s.shape}]`,
      );
  }
  const missing = trained.find((s) => !values.has(s.name));
  if (missing) throw new TrainingOptionsError(`${field} lacks ${missing.name}, a trained tensor`);
}
