// A federation's settings, as the operator sets them at `fedit coordinator init` and every
// participant sees them before joining. Validated field by field; the config's hash is announced
// with every round so a participant always knows which settings it trains under.

import { createHash } from 'node:crypto';
import { FeditError, aggregationRuleNames } from '@fedit/shared';

export interface FederationConfig {
  /** Random id, fixed at init; part of every signature's context. */
  id: string;
  name: string;
  baseModel: {
    /** The model identity every participant's base must have (loadCheckpoint().identity). */
    identity: string;
    /** A human name for it (e.g. HuggingFaceTB/SmolLM2-135M-Instruct). */
    name: string;
  };
  lora: { rank: number; alpha: number; dropout: number; targets: string[] };
  training: {
    /** Local optimizer steps per round (FedIT/Shepherd train each client for a fixed budget). */
    localSteps: number;
    batchSize: number;
    lr: number;
    cutoffLen: number;
    template: 'alpaca' | 'chat';
    trainOnInputs: boolean;
  };
  rounds: number;
  participantsPerRound: { fraction: number; minimum: number };
  /** Seconds a round waits for updates before closing with what it has. */
  roundDeadlineSeconds: number;
  /** Fewest updates a round needs; fewer and it is aborted (visibly, in the log). */
  minUpdates: number;
  aggregation: { rule: string };
  limits: {
    /** Largest L2 norm of an update's difference from the global adapter. */
    maxUpdateNorm: number;
    maxUploadBytes: number;
    maxExampleCount: number;
  };
}

export class ConfigError extends FeditError {
  constructor(field: string, message: string) {
    super('FEDERATION_CONFIG', `federation config: ${field}: ${message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function num(
  o: Record<string, unknown>,
  path: string,
  key: string,
  check: (v: number) => boolean,
  what: string,
): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v))
    throw new ConfigError(`${path}${key}`, `must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}
const int = (min: number) => (v: number) => Number.isInteger(v) && v >= min;
// Finite too: a config is JSON, which has no Infinity (JSON.stringify writes null), and callers
// such as `fedit coordinator init` check an option with these rules before any JSON is written.
const positive = (v: number) => Number.isFinite(v) && v > 0;

/**
 * The checks of the settings `fedit coordinator init` takes as options, shared so the command
 * refuses a bad value with the rule the config itself would apply (naming the option, not the field).
 */
export const LIMIT_RULES = {
  maxUpdateNorm: { check: positive, what: 'a finite positive number' },
  maxUploadBytes: { check: int(1), what: 'a whole number of bytes >= 1' },
  maxExampleCount: { check: int(1), what: 'a whole number >= 1' },
} as const satisfies Record<
  keyof FederationConfig['limits'],
  { check: (v: number) => boolean; what: string }
>;

/** What is wrong with `name` as an aggregation rule, or undefined when it is a known rule. */
export function aggregationRuleProblem(name: string): string | undefined {
  const known = aggregationRuleNames();
  return known.includes(name)
    ? undefined
    : `must be one of the known rules (${known.join(', ')}), got ${JSON.stringify(name)}`;
}

function str(o: Record<string, unknown>, path: string, key: string, max = 200): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw new ConfigError(`${path}${key}`, `must be a non-empty string of at most ${max} characters`);
  return v;
}

function section(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = o[key];
  if (!isObj(v)) throw new ConfigError(key, 'must be an object');
  return v;
}

function limit(limits: Record<string, unknown>, key: keyof typeof LIMIT_RULES): number {
  return num(limits, 'limits.', key, LIMIT_RULES[key].check, LIMIT_RULES[key].what);
}

export function validateFederationConfig(raw: unknown): FederationConfig {
  if (!isObj(raw)) throw new ConfigError('(root)', 'must be a JSON object');
  const base = section(raw, 'baseModel');
  const lora = section(raw, 'lora');
  const training = section(raw, 'training');
  const ppr = section(raw, 'participantsPerRound');
  const aggregation = section(raw, 'aggregation');
  const limits = section(raw, 'limits');
  const targets = lora.targets;
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string')) {
    throw new ConfigError('lora.targets', 'must be a non-empty list of module names');
  }
  const template = training.template;
  if (template !== 'alpaca' && template !== 'chat')
    throw new ConfigError('training.template', 'must be "alpaca" or "chat"');
  const identity = str(base, 'baseModel.', 'identity');
  if (!/^sha256:[0-9a-f]{64}$/.test(identity))
    throw new ConfigError('baseModel.identity', 'must be a model identity (sha256:<64 hex>)');
  const config: FederationConfig = {
    id: str(raw, '', 'id', 64),
    name: str(raw, '', 'name'),
    baseModel: { identity, name: str(base, 'baseModel.', 'name') },
    lora: {
      rank: num(lora, 'lora.', 'rank', int(1), 'a whole number >= 1'),
      alpha: num(lora, 'lora.', 'alpha', positive, 'a positive number'),
      dropout: num(lora, 'lora.', 'dropout', (v) => v >= 0 && v < 1, 'in [0, 1)'),
      targets: targets as string[],
    },
    training: {
      localSteps: num(training, 'training.', 'localSteps', int(1), 'a whole number >= 1'),
      batchSize: num(training, 'training.', 'batchSize', int(1), 'a whole number >= 1'),
      lr: num(training, 'training.', 'lr', positive, 'a positive number'),
      cutoffLen: num(training, 'training.', 'cutoffLen', int(2), 'a whole number >= 2'),
      template,
      trainOnInputs: training.trainOnInputs === true,
    },
    rounds: num(raw, '', 'rounds', int(1), 'a whole number >= 1'),
    participantsPerRound: {
      fraction: num(ppr, 'participantsPerRound.', 'fraction', (v) => v > 0 && v <= 1, 'in (0, 1]'),
      minimum: num(ppr, 'participantsPerRound.', 'minimum', int(1), 'a whole number >= 1'),
    },
    roundDeadlineSeconds: num(raw, '', 'roundDeadlineSeconds', positive, 'a positive number of seconds'),
    minUpdates: num(raw, '', 'minUpdates', int(1), 'a whole number >= 1'),
    aggregation: { rule: str(aggregation, 'aggregation.', 'rule', 40) },
    limits: {
      maxUpdateNorm: limit(limits, 'maxUpdateNorm'),
      maxUploadBytes: limit(limits, 'maxUploadBytes'),
      maxExampleCount: limit(limits, 'maxExampleCount'),
    },
  };
  // Caught here rather than when the coordinator starts its first round.
  const ruleProblem = aggregationRuleProblem(config.aggregation.rule);
  if (ruleProblem) throw new ConfigError('aggregation.rule', ruleProblem);
  if (config.minUpdates > config.participantsPerRound.minimum) {
    throw new ConfigError(
      'minUpdates',
      `(${config.minUpdates}) cannot exceed participantsPerRound.minimum (${config.participantsPerRound.minimum})`,
    );
  }
  return config;
}

/** Canonical JSON: keys sorted at every level, so the hash does not depend on key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObj(value)) {
    return `{${Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function configHash(config: FederationConfig): string {
  return `sha256:${createHash('sha256').update('fedit/federation-config/v1\n').update(canonicalJson(config)).digest('hex')}`;
}

/**
 * The dotted paths of the fields where `a` and `b` differ (`limits.maxUploadBytes`, `lora.targets`),
 * in a stable order; empty when they are the same config. Lists are compared whole.
 */
export function configDifferences(a: unknown, b: unknown, path = ''): string[] {
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => configDifferences(a[k], b[k], `${path}${path ? '.' : ''}${k}`));
  }
  return canonicalJson(a) === canonicalJson(b) ? [] : [path || '(root)'];
}
