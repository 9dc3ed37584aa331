// A federation's settings (federation.json): set by the operator at `fedit coordinator init`,
// recorded in the round log's first record, answered to every participant before it joins, and
// named by its hash in every round announcement. One type, one parser and one hash for the
// coordinator and the participant alike, so both hold a config to the same bounds.
//
// The hash ("fedit/federation-config/v2"), reproducible from shared code or by hand:
//
//   H = "sha256:" + hex(SHA-256("fedit/federation-config/v2\n" || C))
//   C = canonicalBytes(withDecimalStrings(config))   (rounds/canonical.ts)
//
// i.e. the parsed config (the fields of FederationConfig, nothing else) in the canonical JSON of
// round records, where every number that is not an integer (lr, dropout, fraction, ...) is written
// as its decimal string: 3e-4 -> "0.0003". In Python, with x -> format(Decimal(repr(x)), 'f') for
// every non-integer float x: json.dumps(config, ensure_ascii=False, separators=(',', ':'),
// sort_keys=True).encode('utf-8'). Version 1 hashed another, home-made canonical form (JSON
// floats, UTF-16 key order); a v1 hash is not comparable with a v2 one.

import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { FeditError } from '../errors.ts';
import { aggregationRuleNames } from '../aggregation/rules.ts';
import { canonicalBytes, withDecimalStrings } from '../rounds/canonical.ts';

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
    template: PromptTemplateName;
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

export type PromptTemplateName = 'alpaca' | 'chat';

/** A field of a federation config is missing or out of bounds; `field` is its dotted path. */
export class ConfigError extends FeditError {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super('FEDERATION_CONFIG', `federation config: ${field}: ${problem}`);
  }
}

type Rule = { check: (v: number) => boolean; what: string };
const whole = (min: number): Rule => ({
  check: (v) => Number.isInteger(v) && v >= min,
  what: `a whole number >= ${min}`,
});
// Finite too: a config is JSON, which has no Infinity (JSON.stringify writes null), and callers
// such as `fedit coordinator init` check an option with these rules before any JSON is written.
const positive = (what = 'a positive number'): Rule => ({ check: (v) => Number.isFinite(v) && v > 0, what });

/**
 * The checks of the settings `fedit coordinator init` takes as options, shared so the command
 * refuses a bad value with the rule the config itself would apply (naming the option, not the field).
 */
export const LIMIT_RULES = {
  maxUpdateNorm: positive('a finite positive number'),
  maxUploadBytes: { ...whole(1), what: 'a whole number of bytes >= 1' },
  maxExampleCount: whole(1),
} as const satisfies Record<keyof FederationConfig['limits'], Rule>;

/** What is wrong with `name` as an aggregation rule, or undefined when it is a known rule. */
export function aggregationRuleProblem(name: string): string | undefined {
  const known = aggregationRuleNames();
  return known.includes(name)
    ? undefined
    : `must be one of the known rules (${known.join(', ')}), got ${JSON.stringify(name)}`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the fields of one section (`prefix` is its dotted path with a trailing dot). */
function fields(o: Record<string, unknown>, prefix: string) {
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(`${prefix}${key}`, problem);
  };
  return {
    section(key: string): Record<string, unknown> {
      const v = o[key];
      return isObject(v) ? v : fail(key, 'must be an object');
    },
    number(key: string, rule: Rule): number {
      const v = o[key];
      return typeof v === 'number' && Number.isFinite(v) && rule.check(v)
        ? v
        : fail(key, `must be ${rule.what}, got ${JSON.stringify(v)}`);
    },
    text(key: string, max = 200): string {
      const v = o[key];
      return typeof v === 'string' && v.length > 0 && v.length <= max
        ? v
        : fail(key, `must be a non-empty string of at most ${max} characters`);
    },
    fail,
  };
}

/**
 * Checks a federation config field by field and returns it typed, holding exactly the fields of
 * FederationConfig. Throws ConfigError naming the first bad field's dotted path.
 */
export function validateFederationConfig(raw: unknown): FederationConfig {
  if (!isObject(raw)) throw new ConfigError('(root)', 'must be a JSON object');
  const root = fields(raw, '');
  const base = fields(root.section('baseModel'), 'baseModel.');
  const loraSection = root.section('lora');
  const lora = fields(loraSection, 'lora.');
  const trainingSection = root.section('training');
  const training = fields(trainingSection, 'training.');
  const ppr = fields(root.section('participantsPerRound'), 'participantsPerRound.');
  const aggregation = fields(root.section('aggregation'), 'aggregation.');
  const limits = fields(root.section('limits'), 'limits.');

  const targets = loraSection.targets;
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string'))
    lora.fail('targets', 'must be a non-empty list of module names');
  const template = trainingSection.template;
  if (template !== 'alpaca' && template !== 'chat')
    training.fail('template', `must be "alpaca" or "chat", got ${JSON.stringify(template)}`);
  const trainOnInputs = trainingSection.trainOnInputs ?? false;
  if (typeof trainOnInputs !== 'boolean') training.fail('trainOnInputs', 'must be true or false');
  const identity = base.text('identity');
  if (!/^sha256:[0-9a-f]{64}$/.test(identity))
    base.fail('identity', 'must be a model identity (sha256:<64 hex>)');

  const config: FederationConfig = {
    id: root.text('id', 64),
    name: root.text('name'),
    baseModel: { identity, name: base.text('name') },
    lora: {
      rank: lora.number('rank', whole(1)),
      alpha: lora.number('alpha', positive()),
      dropout: lora.number('dropout', { check: (v) => v >= 0 && v < 1, what: 'in [0, 1)' }),
      targets: [...(targets as string[])],
    },
    training: {
      localSteps: training.number('localSteps', whole(1)),
      batchSize: training.number('batchSize', whole(1)),
      lr: training.number('lr', positive()),
      cutoffLen: training.number('cutoffLen', whole(2)),
      template: template as PromptTemplateName,
      trainOnInputs: trainOnInputs as boolean,
    },
    rounds: root.number('rounds', whole(1)),
    participantsPerRound: {
      fraction: ppr.number('fraction', { check: (v) => v > 0 && v <= 1, what: 'in (0, 1]' }),
      minimum: ppr.number('minimum', whole(1)),
    },
    roundDeadlineSeconds: root.number('roundDeadlineSeconds', positive('a positive number of seconds')),
    minUpdates: root.number('minUpdates', whole(1)),
    aggregation: { rule: aggregation.text('rule', 40) },
    limits: {
      maxUpdateNorm: limits.number('maxUpdateNorm', LIMIT_RULES.maxUpdateNorm),
      maxUploadBytes: limits.number('maxUploadBytes', LIMIT_RULES.maxUploadBytes),
      maxExampleCount: limits.number('maxExampleCount', LIMIT_RULES.maxExampleCount),
    },
  };
  // Caught here rather than when the coordinator starts its first round.
  const ruleProblem = aggregationRuleProblem(config.aggregation.rule);
  if (ruleProblem) aggregation.fail('rule', ruleProblem);
  if (config.minUpdates > config.participantsPerRound.minimum) {
    root.fail(
      'minUpdates',
      `(${config.minUpdates}) cannot exceed participantsPerRound.minimum (${config.participantsPerRound.minimum})`,
    );
  }
  return config;
}

const CONFIG_DOMAIN = 'fedit/federation-config/v2\n';

/** The config's hash as rounds announce it; see the definition at the top of this file. */
export function configHash(config: FederationConfig): string {
  const bytes = canonicalBytes(withDecimalStrings(config));
  return `sha256:${createHash('sha256').update(CONFIG_DOMAIN).update(bytes).digest('hex')}`;
}

/**
 * The dotted paths of the fields where `a` and `b` differ (`limits.maxUploadBytes`, `lora.targets`),
 * in a stable order; empty when they are the same config. Lists are compared whole.
 */
export function configDifferences(a: unknown, b: unknown, path = ''): string[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => configDifferences(a[k], b[k], `${path}${path ? '.' : ''}${k}`));
  }
  return isDeepStrictEqual(a, b) ? [] : [path || '(root)'];
}
