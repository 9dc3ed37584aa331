// What a round's aggregation does beyond its rule's name, as round records carry it: the
// federation config's `aggregation` section (and FFA-LoRA's frozen A from its `training`) turned
// into the rule config every round-open and round-closed record names, so an auditor recomputes a
// round from the log alone. In records, numbers that are not integers are decimal strings
// ("0.01"), as everywhere in the log; parseRuleSettings reads them back to binary64.
//
// The settings, in the order the round pipeline (aggregate.ts) applies them:
//   frozenA          every update's lora_A equals the global adapter's, bit for bit (FFA-LoRA)
//   scaffold         the server also steps SCAFFOLD's control variate c (scaffold.ts), kept in the
//                    server state beside the optimizer's
//   weightCap        an update's example count counts at most this much
//   clipping         each update scaled toward the global adapter: fixed bound, or multiplier x the
//                    median norm of the round's updates
//   (the rule)       combines the updates: trimFraction, byzantine, krumSelect, rank and alpha are
//                    the rules' own
//   serverOptimizer  FedOpt step on the pseudo-gradient, with state kept between rounds
//   differentialPrivacy  DP-FedAvg (dp-step.ts) instead of the rule's combine: each update's delta
//                    clipped to clipNorm, the unweighted mean, plus Gaussian noise of stddev
//                    noiseMultiplier * clipNorm / n from the round's seed (noise "central"), or
//                    none added here when the participants add it under secure aggregation
//                    (noise "distributed"); only with fedavg-uniform (federation/dp-config.ts)
// An empty config is FedIT as it always was: no cap, no clipping, no server step.

import { withDecimalStrings } from '../rounds/canonical.ts';
import { AggregationError } from './aggregation-error.ts';
import type { AggregationConfig, AggregationConfigValue } from './rule.ts';

export type ServerOptimizerKind = 'sgd' | 'avgm' | 'adam' | 'yogi' | 'adagrad';

export interface ServerOptimizerSettings {
  kind: ServerOptimizerKind;
  lr: number;
  beta1: number;
  beta2: number;
  tau: number;
}

export type ClippingSettings = { kind: 'fixed'; bound: number } | { kind: 'adaptive'; multiplier: number };

/** DP-FedAvg's terms as round records carry them; where the noise is added. */
export interface DpSettings {
  clipNorm: number;
  noiseMultiplier: number;
  noise: 'central' | 'distributed';
}

export interface RuleSettings {
  frozenA?: boolean;
  /** SCAFFOLD: the round also steps the server control variate c (scaffold.ts). */
  scaffold?: boolean;
  weightCap?: number;
  clipping?: ClippingSettings;
  trimFraction?: number;
  byzantine?: number;
  krumSelect?: number;
  /** product-svd: the global adapter's LoRA rank and alpha. */
  rank?: number;
  alpha?: number;
  serverOptimizer?: ServerOptimizerSettings;
  differentialPrivacy?: DpSettings;
}

/** Settings every rule takes; a rule lists its own others (AggregationRule.options). */
export const COMMON_SETTINGS = [
  'frozenA',
  'scaffold',
  'weightCap',
  'clipping',
  'serverOptimizer',
  'differentialPrivacy',
] as const;
export type RuleOption = Exclude<keyof RuleSettings, (typeof COMMON_SETTINGS)[number]>;

/** Reddi et al.'s defaults where the config leaves them out (avgm's momentum is beta1). */
const SERVER_DEFAULTS = { beta1: 0.9, beta2: 0.99, tau: 1e-3 } as const;

/** The parts of a federation config the rule config derives from. */
export interface RuleSources {
  lora: { rank: number; alpha: number };
  training: { freezeLoraA?: boolean; scaffold?: boolean };
  aggregation: {
    rule: string;
    weightCap?: number;
    clipping?: ClippingSettings;
    trimFraction?: number;
    byzantine?: number;
    krumSelect?: number;
    serverOptimizer?: Partial<ServerOptimizerSettings> & { kind: ServerOptimizerKind; lr: number };
  };
  differentialPrivacy?: { clipNorm: number; noiseMultiplier: number };
  /**
   * The secure-aggregation section (secagg): when present the participants add the DP noise
   * (distributed), since the coordinator never holds an update to add it to.
   */
  secureAggregation?: unknown;
}

/**
 * The rule config a federation's rounds record: every setting spelled out (server optimizer
 * defaults filled in), non-integers as decimal strings. Empty for a plain FedIT federation.
 */
export function ruleConfigOf(config: RuleSources, ruleOptions: readonly RuleOption[]): AggregationConfig {
  const { aggregation: a } = config;
  const settings: RuleSettings = {};
  if (config.training.freezeLoraA) settings.frozenA = true;
  if (config.training.scaffold) settings.scaffold = true;
  if (a.weightCap !== undefined) settings.weightCap = a.weightCap;
  if (a.clipping) settings.clipping = a.clipping;
  if (ruleOptions.includes('trimFraction')) settings.trimFraction = a.trimFraction ?? 0.2;
  if (ruleOptions.includes('byzantine')) settings.byzantine = a.byzantine ?? 0;
  if (ruleOptions.includes('krumSelect')) settings.krumSelect = a.krumSelect ?? 1;
  if (ruleOptions.includes('rank')) settings.rank = config.lora.rank;
  if (ruleOptions.includes('alpha')) settings.alpha = config.lora.alpha;
  if (a.serverOptimizer) settings.serverOptimizer = { ...SERVER_DEFAULTS, ...a.serverOptimizer };
  const dp = config.differentialPrivacy;
  if (dp) {
    const noise = config.secureAggregation !== undefined ? 'distributed' : 'central';
    settings.differentialPrivacy = { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, noise };
  }
  return withDecimalStrings(settings) as AggregationConfig;
}

/**
 * Reads a rule config from a record (or a test): known keys only (the common ones and the rule's
 * own), each in range. Throws AggregationError('AGGREGATION_CONFIG') naming the key.
 */
export function parseRuleSettings(
  rule: string,
  config: AggregationConfig,
  ruleOptions: readonly RuleOption[],
): RuleSettings {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw configError(rule, 'its config must be an object ({})');
  }
  const allowed = new Set<string>([...COMMON_SETTINGS, ...ruleOptions]);
  const unknown = Object.keys(config).filter((k) => !allowed.has(k));
  if (unknown.length > 0) {
    const takes = allowed.size > 0 ? `; it takes ${[...allowed].join(', ')}` : '';
    throw configError(rule, `unknown setting ${unknown.map((k) => JSON.stringify(k)).join(', ')}${takes}`);
  }
  const read = new Reader(rule, config);
  const out: RuleSettings = {};
  if (config.frozenA !== undefined) out.frozenA = read.flag('frozenA');
  if (config.scaffold !== undefined) out.scaffold = read.flag('scaffold');
  if (config.weightCap !== undefined)
    out.weightCap = read.number('weightCap', (v) => Number.isSafeInteger(v) && v >= 1);
  if (config.clipping !== undefined) out.clipping = read.clipping();
  if (config.trimFraction !== undefined)
    out.trimFraction = read.number('trimFraction', (v) => v >= 0 && v < 0.5);
  if (config.byzantine !== undefined)
    out.byzantine = read.number('byzantine', (v) => Number.isSafeInteger(v) && v >= 0);
  if (config.krumSelect !== undefined)
    out.krumSelect = read.number('krumSelect', (v) => Number.isSafeInteger(v) && v >= 1);
  if (config.rank !== undefined) out.rank = read.number('rank', (v) => Number.isSafeInteger(v) && v >= 1);
  if (config.alpha !== undefined) out.alpha = read.number('alpha', (v) => v > 0);
  if (config.serverOptimizer !== undefined) out.serverOptimizer = read.serverOptimizer();
  if (config.differentialPrivacy !== undefined) out.differentialPrivacy = read.differentialPrivacy();
  for (const option of ruleOptions) {
    if (out[option] === undefined) throw configError(rule, `${option} is required`);
  }
  return out;
}

function configError(rule: string, problem: string): AggregationError {
  return new AggregationError('AGGREGATION_CONFIG', `rule ${rule}: ${problem}`);
}

/** Reads values of a record's rule config: integers as numbers, non-integers as decimal strings. */
class Reader {
  constructor(
    private readonly rule: string,
    private readonly config: { readonly [key: string]: AggregationConfigValue },
  ) {}

  flag(key: string): boolean {
    const v = this.config[key];
    if (typeof v !== 'boolean') throw configError(this.rule, `${key} must be true or false`);
    return v;
  }

  number(key: string, inRange: (v: number) => boolean, from = this.config, path = key): number {
    const raw = from[key];
    const v =
      typeof raw === 'number'
        ? raw
        : typeof raw === 'string' && /^-?\d+(\.\d+)?$/.test(raw)
          ? Number(raw)
          : NaN;
    if (!Number.isFinite(v) || !inRange(v)) {
      throw configError(this.rule, `${path} is out of range or not a number: ${JSON.stringify(raw)}`);
    }
    return v;
  }

  section(key: string): { readonly [key: string]: AggregationConfigValue } {
    const v = this.config[key];
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw configError(this.rule, `${key} must be an object`);
    return v as { readonly [key: string]: AggregationConfigValue };
  }

  clipping(): ClippingSettings {
    const c = this.section('clipping');
    if (c.kind === 'fixed')
      return { kind: 'fixed', bound: this.number('bound', (v) => v > 0, c, 'clipping.bound') };
    if (c.kind === 'adaptive') {
      return {
        kind: 'adaptive',
        multiplier: this.number('multiplier', (v) => v > 0, c, 'clipping.multiplier'),
      };
    }
    throw configError(
      this.rule,
      `clipping.kind must be "fixed" or "adaptive", got ${JSON.stringify(c.kind)}`,
    );
  }

  differentialPrivacy(): DpSettings {
    const s = this.section('differentialPrivacy');
    if (s.noise !== 'central' && s.noise !== 'distributed')
      throw configError(
        this.rule,
        `differentialPrivacy.noise must be "central" or "distributed", got ${JSON.stringify(s.noise)}`,
      );
    const positive = (v: number) => v > 0;
    return {
      clipNorm: this.number('clipNorm', positive, s, 'differentialPrivacy.clipNorm'),
      noiseMultiplier: this.number('noiseMultiplier', positive, s, 'differentialPrivacy.noiseMultiplier'),
      noise: s.noise,
    };
  }

  serverOptimizer(): ServerOptimizerSettings {
    const s = this.section('serverOptimizer');
    const kinds: readonly ServerOptimizerKind[] = ['sgd', 'avgm', 'adam', 'yogi', 'adagrad'];
    if (!kinds.includes(s.kind as ServerOptimizerKind)) {
      throw configError(
        this.rule,
        `serverOptimizer.kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(s.kind)}`,
      );
    }
    const unit = (v: number) => v >= 0 && v < 1;
    return {
      kind: s.kind as ServerOptimizerKind,
      lr: this.number('lr', (v) => v > 0, s, 'serverOptimizer.lr'),
      beta1: this.number('beta1', unit, s, 'serverOptimizer.beta1'),
      beta2: this.number('beta2', unit, s, 'serverOptimizer.beta2'),
      tau: this.number('tau', (v) => v > 0, s, 'serverOptimizer.tau'),
    };
  }
}
