// The federation's settings as a participant sees them: the config JSON the coordinator answers
// 'federation:info' with. The coordinator validates the whole config; the client checks the fields
// it acts on (base model, LoRA, prompt template, cutoff) and keeps the rest as sent, so the UI can
// show everything the operator set, including fields newer than this client.
import type { ContentHash } from '@fedit/shared';
import { FederationError } from './errors.ts';

export type PromptTemplateName = 'alpaca' | 'chat';

export interface FederationSettings {
  id: string;
  name: string;
  baseModel: {
    /** The model identity every participant's base must have (loadCheckpoint().identity). */
    identity: string;
    name: string;
  };
  lora: { rank: number; alpha: number; dropout: number; targets: string[] };
  training: {
    template: PromptTemplateName;
    cutoffLen: number;
    trainOnInputs: boolean;
    /** Defaults for rounds (each round announces the values it uses). */
    localSteps?: number;
    batchSize?: number;
    lr?: number;
  };
  /** Planned number of rounds, when the config says. */
  rounds?: number;
  /** The whole config as the coordinator sent it. */
  raw: Record<string, unknown>;
}

/** What 'federation:info' answers, parsed. */
export interface FederationInfoParsed {
  settings: FederationSettings;
  /** The config JSON text exactly as sent (its hash is `configHash`). */
  configText: string;
  configHash: ContentHash;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses the federation config JSON. Throws FederationError FEDERATION_CONFIG naming the field
 * (and `source`, where the text came from) when a field the client needs is missing or unusable.
 */
export function parseFederationSettings(text: string, source = 'the federation config'): FederationSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new FederationError(
      'FEDERATION_CONFIG',
      `${source} is not valid JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const fail = (field: string, problem: string): never => {
    throw new FederationError('FEDERATION_CONFIG', `${source}: ${field} ${problem}`, { field });
  };
  const section = (o: Record<string, unknown>, key: string, path = key): Record<string, unknown> => {
    const v = o[key];
    if (!isRecord(v)) fail(path, 'must be an object');
    return v as Record<string, unknown>;
  };
  const str = (o: Record<string, unknown>, key: string, path: string): string => {
    const v = o[key];
    if (typeof v !== 'string' || v.length === 0)
      fail(path, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const num = (
    o: Record<string, unknown>,
    key: string,
    path: string,
    integer: boolean,
    min: number,
  ): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) {
      fail(path, `must be ${integer ? 'a whole number' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const optional = (o: Record<string, unknown>, key: string, path: string, integer: boolean, min: number) =>
    o[key] === undefined ? undefined : num(o, key, path, integer, min);

  if (!isRecord(raw)) return fail('(root)', 'must be a JSON object');
  const base = section(raw, 'baseModel');
  const lora = section(raw, 'lora');
  const training = section(raw, 'training');
  const identity = str(base, 'identity', 'baseModel.identity');
  if (!/^sha256:[0-9a-f]{64}$/.test(identity))
    fail('baseModel.identity', 'must be a model identity (sha256:<64 hex>)');
  const targets = lora.targets;
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string')) {
    fail('lora.targets', 'must be a non-empty list of module names');
  }
  const template = training.template;
  if (template !== 'alpaca' && template !== 'chat') {
    fail('training.template', `must be "alpaca" or "chat", got ${JSON.stringify(template)}`);
  }
  if (training.trainOnInputs !== undefined && typeof training.trainOnInputs !== 'boolean') {
    fail('training.trainOnInputs', 'must be true or false');
  }
  const dropout = num(lora, 'dropout', 'lora.dropout', false, 0);
  if (dropout >= 1) fail('lora.dropout', `must be below 1, got ${dropout}`);
  return {
    id: str(raw, 'id', 'id'),
    name: str(raw, 'name', 'name'),
    baseModel: { identity, name: str(base, 'name', 'baseModel.name') },
    lora: {
      rank: num(lora, 'rank', 'lora.rank', true, 1),
      alpha: num(lora, 'alpha', 'lora.alpha', false, Number.MIN_VALUE),
      dropout,
      targets: [...(targets as string[])],
    },
    training: {
      template: template as PromptTemplateName,
      cutoffLen: num(training, 'cutoffLen', 'training.cutoffLen', true, 2),
      trainOnInputs: training.trainOnInputs === true,
      localSteps: optional(training, 'localSteps', 'training.localSteps', true, 1),
      batchSize: optional(training, 'batchSize', 'training.batchSize', true, 1),
      lr: optional(training, 'lr', 'training.lr', false, Number.MIN_VALUE),
    },
    rounds: optional(raw, 'rounds', 'rounds', true, 0),
    raw,
  };
}
