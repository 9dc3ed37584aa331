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
import { aggregationRule, aggregationRuleNames } from '../aggregation/rules.ts';
import { CONTENT_HASH_PATTERN, MAX_ROUND_DEADLINE_SECONDS } from '../protocol/limits.ts';
import { MODEL_REPO_PATTERN, MODEL_REVISION_PATTERN } from './model-repo.ts';
import { checkDpCombination, differentialPrivacySection } from './dp-config.ts';
import { secureAggregationProblem } from './secure-aggregation.ts';
import type { ContentHash } from '../protocol/messages.ts';
import { canonicalBytes, withDecimalStrings } from '../rounds/canonical.ts';
import {
  SchemaError,
  fail,
  isRecord,
  literal,
  object,
  oneOf,
  optional,
  pattern,
  predicate,
  refine,
  union,
  withDefault,
  type Infer,
  type Schema,
  type Shape,
} from '../schema/schema.ts';

/** A field of a federation config is missing or out of bounds; `field` is its dotted path. */
export class ConfigError extends FeditError {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super('FEDERATION_CONFIG', `federation config: ${field}: ${problem}`);
  }
}

/**
 * Checks a federation config field by field and returns it typed, holding exactly the fields of
 * FederationConfig (a field it does not declare is dropped, so it cannot change the hash). Throws
 * ConfigError naming the first bad field's dotted path.
 */
export function validateFederationConfig(raw: unknown): FederationConfig {
  try {
    return federationConfig.parse(raw, '');
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    // A schema message is the field's path, then what is wrong with it.
    const problem = error.field === '' ? error.message : error.message.slice(error.field.length + 1);
    throw new ConfigError(error.field || '(root)', problem);
  }
}

/**
 * Throws ConfigError('aggregation.rule') unless this fedit implements the config's rule: the
 * coordinator asks before it writes or serves a federation (a participant never needs to).
 */
export function requireKnownRule(config: FederationConfig): void {
  const problem = aggregationRuleProblem(config.aggregation.rule);
  if (problem !== undefined) throw new ConfigError('aggregation.rule', problem);
  const { options, refactors } = aggregationRule(config.aggregation.rule);
  if (config.training.scaffold && refactors) {
    throw new ConfigError(
      'training.scaffold',
      `rule ${config.aggregation.rule} re-factors the adapter every round, so SCAFFOLD's control variates (per factor element) would not line up with the next round's factors; use a rule that averages the factors (fedit, fedavg-uniform, ...)`,
    );
  }
  for (const key of RULE_OWN_SETTINGS) {
    if (config.aggregation[key] !== undefined && !(options as readonly string[]).includes(key)) {
      throw new ConfigError(
        `aggregation.${key}`,
        `rule ${config.aggregation.rule} does not use it (it belongs to ${key === 'trimFraction' ? 'trimmed-mean' : 'krum'})`,
      );
    }
  }
}

/** Settings of the aggregation section that only some rules read. */
const RULE_OWN_SETTINGS = ['trimFraction', 'byzantine', 'krumSelect'] as const;

/** The most LoRA target modules a config may name, and the longest name. */
const MAX_LORA_TARGETS = 64;
const MAX_MODULE_NAME = 128;

/** A rule for a number: the config's field and `fedit coordinator init`'s option both check it. */
export interface NumberRule {
  check: (v: number) => boolean;
  /** What the number must be, after "must be": "a whole number >= 1". */
  what: string;
}

// Safe integers only: the hash writes integers as JSON numbers (canonical.ts), which stops at 2^53.
const whole = (min: number, what = `a whole number >= ${min}`): NumberRule => ({
  check: (v) => Number.isSafeInteger(v) && v >= min,
  what,
});
// Finite too: a config is JSON, which has no Infinity (JSON.stringify writes null), and callers
// such as `fedit coordinator init` check an option with these rules before any JSON is written.
const positive = (what = 'a positive number'): NumberRule => ({
  check: (v) => Number.isFinite(v) && v > 0,
  what,
});

/**
 * The checks of the settings `fedit coordinator init` takes as options, shared so the command
 * refuses a bad value with the rule the config itself would apply (naming the option, not the field).
 */
export const LIMIT_RULES = {
  maxUpdateNorm: positive('a finite positive number'),
  maxUploadBytes: whole(1, 'a whole number of bytes >= 1'),
  maxExampleCount: whole(1),
} as const satisfies Record<string, NumberRule>;

/** What is wrong with `name` as an aggregation rule, or undefined when it is a known rule. */
export function aggregationRuleProblem(name: string): string | undefined {
  const known = aggregationRuleNames();
  return known.includes(name)
    ? undefined
    : `must be one of the known rules (${known.join(', ')}), got ${JSON.stringify(name)}`;
}

// ---- the declaration, in the config's wording ("lora.rank: must be a whole number >= 1") ---------

const numberField = (rule: NumberRule): Schema<number> =>
  predicate<number>(
    (v) => typeof v === 'number' && Number.isFinite(v) && rule.check(v),
    (v) => `must be ${rule.what}, got ${JSON.stringify(v)}`,
    'RANGE',
  );
const inRange = (what: string, check: (v: number) => boolean) => numberField({ what, check });
const textField = (max = 200) =>
  predicate<string>(
    (v) => typeof v === 'string' && v.length > 0 && v.length <= max,
    `must be a non-empty string of at most ${max} characters`,
  );
/** A section of the config; a field a newer fedit wrote is dropped, not refused. */
const section = <S extends Shape>(shape: S, notObject = 'must be an object') =>
  object(shape, { others: 'drop', wording: { notObject } });

const template = oneOf(['alpaca', 'chat'], { expected: '"alpaca" or "chat"' });
const boolean = oneOf([true, false], { expected: 'true or false' });
export type PromptTemplateName = Infer<typeof template>;

const federationConfig = refine(
  section(
    {
      /** Random id, fixed at init; part of every signature's context. */
      id: textField(64),
      name: textField(),
      baseModel: section({
        /** The model identity every participant's base must have (loadCheckpoint().identity). */
        identity: pattern(CONTENT_HASH_PATTERN, 'a model identity (sha256:<64 hex>)'),
        /** A human name for it (e.g. HuggingFaceTB/SmolLM2-135M-Instruct). */
        name: textField(),
        /** Where to download it: a Hugging Face repository id (model-repo.ts). Absent: nowhere said. */
        repo: optional(pattern(MODEL_REPO_PATTERN, 'a Hugging Face repository id (owner/name)')),
        /** The repository's revision, best a commit hash. Absent: its main branch. */
        revision: optional(pattern(MODEL_REVISION_PATTERN, 'a commit hash, branch or tag')),
      }),
      lora: section({
        rank: numberField(whole(1)),
        alpha: numberField(positive()),
        dropout: inRange('in [0, 1)', (v) => v >= 0 && v < 1),
        // Bounded: a participant parses this from the coordinator before anything else is checked.
        targets: predicate<string[]>(
          (v) =>
            Array.isArray(v) &&
            v.length > 0 &&
            v.length <= MAX_LORA_TARGETS &&
            v.every((t) => typeof t === 'string' && t.length > 0 && t.length <= MAX_MODULE_NAME),
          `must be a list of 1 to ${MAX_LORA_TARGETS} module names of 1 to ${MAX_MODULE_NAME} characters`,
        ),
      }),
      training: section({
        /** Local optimizer steps per round (FedIT/Shepherd train each client for a fixed budget). */
        localSteps: numberField(whole(1)),
        batchSize: numberField(whole(1)),
        lr: numberField(positive()),
        cutoffLen: numberField(whole(2)),
        template,
        trainOnInputs: withDefault(boolean, false),
        /**
         * FFA-LoRA: every lora_A stays at the initial adapter's values and only lora_B trains, so
         * averaging B is exactly averaging the updates (docs/learning.md). Absent = false.
         */
        freezeLoraA: optional(boolean),
        /** FedProx: mu of the proximal term mu/2 ||theta - global||^2 in local training. Absent = 0. */
        proximalMu: optional(inRange('a number in [0, 1000]', (v) => v >= 0 && v <= 1000)),
        /**
         * SCAFFOLD (Karimireddy et al. 2020): local training adds the correction c - c_i to every
         * trained tensor's gradient; c lives in the server state, c_i with each participant
         * (shared/src/aggregation/scaffold.ts). Absent = false.
         */
        scaffold: optional(boolean),
        /** The learning rate across rounds (within a round it is constant). Absent = constant. */
        lrSchedule: optional(
          section({
            kind: oneOf(['constant', 'linear', 'cosine']),
            /** The last round's rate as a fraction of `lr`. */
            finalFraction: inRange('in (0, 1]', (v) => v > 0 && v <= 1),
          }),
        ),
      }),
      /** Rounds to aggregate: a round aborted for too few updates does not count, another opens. */
      rounds: numberField(whole(1)),
      /**
       * Who trains in a round (shared/src/rounds/selection.ts): a round opens once `minimum`
       * participants are ready; its target k = max(minimum, ceil(ready * fraction)) (at most the
       * ready); it selects ceil(k * overSelection) of them (at most the ready) and closes as soon
       * as `quorum` updates are counted (absent = k). Absent fields keep federations created
       * before them hashing as they did.
       */
      participantsPerRound: section({
        fraction: inRange('in (0, 1]', (v) => v > 0 && v <= 1),
        minimum: numberField(whole(1)),
        /** Bonawitz et al. 2019 select ~130% of the target. Absent = DEFAULT_OVER_SELECTION. */
        overSelection: optional(inRange('a number in [1, 10]', (v) => v >= 1 && v <= 10)),
        quorum: optional(numberField(whole(1))),
      }),
      /** Seconds a round waits for updates before closing with what it has. */
      roundDeadlineSeconds: inRange(
        `a positive number of seconds, at most ${MAX_ROUND_DEADLINE_SECONDS} (366 days)`,
        (v) => v > 0 && v <= MAX_ROUND_DEADLINE_SECONDS,
      ),
      /** Fewest updates a round needs; fewer and it is aborted (visibly, in the log). */
      minUpdates: numberField(whole(1)),
      aggregation: section({
        // A name only: whether this fedit knows the rule is the coordinator's question
        // (requireKnownRule), not a participant's, whose older fedit must still join a federation
        // that runs a newer rule.
        rule: textField(40),
        // The rest shapes how the rule counts updates (shared/src/aggregation/round-rule.ts says
        // which rule takes which); absent fields keep the FedIT behaviour of federations created
        // before they existed, so their config hash is unchanged.
        /** Each update's example count counts at most this much. */
        weightCap: optional(numberField(whole(1))),
        /** Updates are scaled toward the global adapter so their difference from it is at most the bound. */
        clipping: optional(
          union('kind', [
            section({ kind: literal('fixed'), bound: numberField(positive()) }),
            section({
              kind: literal('adaptive'),
              /** The bound is this times the median norm of the round's updates. */
              multiplier: numberField(positive()),
            }),
          ]),
        ),
        /** trimmed-mean: the fraction of values dropped at each end, per coordinate. */
        trimFraction: optional(inRange('in [0, 0.5)', (v) => v >= 0 && v < 0.5)),
        /** krum: how many Byzantine participants a round tolerates. */
        byzantine: optional(numberField(whole(0))),
        /** krum: how many of the best-scored updates are averaged (1 = Krum, more = multi-Krum). */
        krumSelect: optional(numberField(whole(1))),
        /** A server optimizer applied to the round's pseudo-gradient (FedOpt). Absent = none. */
        serverOptimizer: optional(
          section({
            kind: oneOf(['sgd', 'avgm', 'adam', 'yogi', 'adagrad']),
            lr: numberField(positive()),
            /** avgm's momentum; adam's and yogi's beta1. */
            beta1: optional(inRange('in [0, 1)', (v) => v >= 0 && v < 1)),
            beta2: optional(inRange('in [0, 1)', (v) => v >= 0 && v < 1)),
            /** Adaptivity: the epsilon of adam, yogi and adagrad (Reddi et al.'s tau). */
            tau: optional(numberField(positive())),
          }),
        ),
      }),
      limits: section({
        /** Largest L2 norm of an update's difference from the global adapter. */
        maxUpdateNorm: numberField(LIMIT_RULES.maxUpdateNorm),
        maxUploadBytes: numberField(LIMIT_RULES.maxUploadBytes),
        maxExampleCount: numberField(LIMIT_RULES.maxExampleCount),
      }),
      /**
       * Client-level DP-FedAvg with an accountant (dp-config.ts, docs/privacy.md). Absent = no
       * differential privacy, and the config hashes as it did before the setting existed.
       */
      differentialPrivacy: optional(differentialPrivacySection),
      /**
       * Secure aggregation (secure-aggregation.ts): the coordinator sees only the sum of masked,
       * fixed-point updates. Absent = plaintext rounds (and the config hashes as before).
       */
      secureAggregation: optional(
        section({
          graph: oneOf(['complete', 'secagg+'], { expected: '"complete" or "secagg+"' }),
          /** SecAgg+'s even degree k; absent: secAggPlusDegree(n) of the round. */
          degree: optional(
            inRange('an even whole number >= 2', (v) => Number.isSafeInteger(v) && v >= 2 && v % 2 === 0),
          ),
          /** t = max(2, ceil(fraction * fewest share holders of any participant)). */
          thresholdFraction: inRange('in (0.5, 1]', (v) => v > 0.5 && v <= 1),
          /** R: each coordinate of an update's delta is clipped to [-R, R] before encoding. */
          clipRange: numberField(positive()),
          /** k: fixed point with scale 2^k. */
          scaleBits: inRange('a whole number from 0 to 30', (v) => Number.isInteger(v) && v >= 0 && v <= 30),
          /** N: the most participants a round may select (the overflow condition). */
          maxParticipants: numberField(whole(2)),
          /** How long the keys, shares and reveal phases each wait at most. */
          phaseSeconds: inRange('a positive number of seconds, at most 3600', (v) => v > 0 && v <= 3600),
        }),
      ),
    },
    'must be a JSON object',
  ),
  (config) => {
    const { minUpdates, participantsPerRound, baseModel } = config;
    if (baseModel.revision !== undefined && baseModel.repo === undefined)
      fail(
        'INCONSISTENT',
        'baseModel.revision',
        'baseModel.revision names a revision of no repository: set baseModel.repo too',
      );
    if (minUpdates > participantsPerRound.minimum) {
      fail(
        'INCONSISTENT',
        'minUpdates',
        `minUpdates (${minUpdates}) cannot exceed participantsPerRound.minimum (${participantsPerRound.minimum})`,
      );
    }
    const secureProblem = secureAggregationProblem(config);
    if (secureProblem !== undefined)
      fail('INCONSISTENT', 'secureAggregation', `secureAggregation ${secureProblem}`);
    const { quorum } = participantsPerRound;
    if (quorum !== undefined && quorum < minUpdates) {
      fail(
        'INCONSISTENT',
        'participantsPerRound.quorum',
        `participantsPerRound.quorum must be at least minUpdates (${minUpdates}), got ${quorum}: a round closing at its quorum would abort`,
      );
    }
    checkDpCombination(config);
  },
);

/** The over-selection factor of a federation whose config sets none (Bonawitz et al. 2019). */
export const DEFAULT_OVER_SELECTION = 1.3;

/** A federation's settings, as federation.json holds them; see the declaration above. */
export type FederationConfig = Infer<typeof federationConfig>;

const CONFIG_DOMAIN = 'fedit/federation-config/v2\n';

/** The config's hash as rounds announce it; see the definition at the top of this file. */
export function configHash(config: FederationConfig): ContentHash {
  // Over the declared fields only (parsing drops the rest), so a value that carries more (the
  // participant's settings keep the raw text beside the config) hashes as its config does.
  const bytes = canonicalBytes(withDecimalStrings(validateFederationConfig(config)));
  return `sha256:${createHash('sha256').update(CONFIG_DOMAIN).update(bytes).digest('hex')}` as ContentHash;
}

/**
 * The dotted paths of the fields where `a` and `b` differ (`limits.maxUploadBytes`, `lora.targets`),
 * in a stable order; empty when they are the same config. Lists are compared whole.
 */
export function configDifferences(a: unknown, b: unknown, path = ''): string[] {
  if (isRecord(a) && isRecord(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => configDifferences(a[k], b[k], `${path}${path ? '.' : ''}${k}`));
  }
  return isDeepStrictEqual(a, b) ? [] : [path || '(root)'];
}
