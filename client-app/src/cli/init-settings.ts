// `fedit coordinator init`'s learning options (aggregation rule settings, clipping, server
// optimizer, FFA-LoRA, FedProx, learning-rate schedule) and --settings FILE, and how the options,
// the file and the defaults become one federation settings object.
//
// Layers, later winning: the options' defaults, then the file, then the options the person typed.
// Sections (lora, training, participantsPerRound, aggregation, limits) merge key by key; a key's
// value (clipping, serverOptimizer, lrSchedule, targets) is replaced whole. The merged settings are
// checked by the federation config's own parser (validateFederationConfig, requireKnownRule), so
// an option accepts exactly what the config accepts; its error is reworded to name the option the
// person typed, or the file and field the value came from.

import type { Command } from 'commander';
import {
  ConfigError,
  DEFAULT_AGGREGATION_RULE,
  FeditError,
  aggregationRule,
  aggregationRuleNames,
  requireKnownRule,
  validateFederationConfig,
} from '@fedit/shared';
import { mergeSettings, readSettingsFile } from '../operator/settings-patch.ts';
import { number } from './options.ts';
import { DP_OPTION_OF_FIELD, applyDpSettings, dpFromOptions } from './dp-options.ts';
import { SECURE_OPTION_OF_FIELD, applySecureAggregation } from './secagg-options.ts';

type Patch = { [key: string]: unknown };

const isSection = (v: unknown): v is Patch => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `KIND:NUMBER` (or a bare KIND where `bare` allows it) -> [kind, number]; the caller names the option. */
function kindAndNumber(option: string, raw: string, form: string, bare: string[] = []): [string, number?] {
  const m = /^([a-z]+)(?::(.*))?$/.exec(raw.trim());
  if (m && m[2] === undefined && bare.includes(m[1])) return [m[1]];
  const value = m?.[2] !== undefined && m[2].trim() !== '' ? Number(m[2]) : NaN;
  if (!m || !Number.isFinite(value)) {
    throw new FeditError('CLI_OPTION', `${option} must be ${form}, got "${raw}"`);
  }
  return [m[1], value];
}

const CLIP_FORM = "adaptive:M (M times the round's median update norm) or fixed:B (an L2 norm)";
function clipping(raw: string) {
  const [kind, value] = kindAndNumber('--clip', raw, CLIP_FORM);
  if (kind === 'adaptive') return { kind, multiplier: value };
  if (kind === 'fixed') return { kind, bound: value };
  throw new FeditError('CLI_OPTION', `--clip must be ${CLIP_FORM}, got "${raw}"`);
}

function serverOptimizer(raw: string) {
  const [kind, lr] = kindAndNumber('--server-optimizer', raw, 'KIND:LR, e.g. adam:0.02 or avgm:1');
  return { kind, lr };
}

function lrSchedule(raw: string) {
  const form = "cosine:F, linear:F (F: the last round's rate as a fraction of --lr) or constant";
  const [kind, finalFraction] = kindAndNumber('--lr-schedule', raw, form, ['constant']);
  // constant is spelled out (not left absent) so that it overrides a schedule from --settings.
  return { kind, finalFraction: kind === 'constant' ? 1 : finalFraction };
}

/** The learning options and --settings; defaults that are not commander's are the coordinator's. */
export function addLearningOptions(command: Command): Command {
  return command
    .option(
      '--settings <file>',
      'a JSON file of federation settings, shaped like federation.json (sections merged key by key); options given here override it',
    )
    .option(
      '--weight-cap <n>',
      'an update counts as at most n examples (default: local steps x batch size, one round of training)',
      number('--weight-cap'),
    )
    .option(
      '--clip <kind:x>',
      "scale down updates larger than adaptive:M times the round's median update norm, or than fixed:B (default: adaptive:2)",
      clipping,
    )
    .option(
      '--server-optimizer <kind:lr>',
      'FedOpt on the coordinator: sgd, avgm (FedAvgM), adam, yogi or adagrad, with its learning rate, e.g. adam:0.02 (default: none)',
      serverOptimizer,
    )
    .option(
      '--server-beta1 <b>',
      "avgm's momentum; beta1 of adam, yogi and adagrad (default 0.9)",
      number('--server-beta1'),
    )
    .option('--server-beta2 <b>', "adam's and yogi's beta2 (default 0.99)", number('--server-beta2'))
    .option(
      '--server-tau <t>',
      'adam, yogi and adagrad: the epsilon added to the root of v (default 0.001)',
      number('--server-tau'),
    )
    .option('--freeze-lora-a', 'FFA-LoRA: keep every lora_A at its initial values, train only lora_B')
    .option(
      '--scaffold',
      "SCAFFOLD: correct each participant's local drift with control variates (the default, except under product-svd)",
    )
    .option('--no-scaffold', 'train without SCAFFOLD')
    .option(
      '--proximal-mu <mu>',
      "FedProx: pull local training toward the round's global adapter with strength mu (default 0: off)",
      number('--proximal-mu'),
    )
    .option(
      '--lr-schedule <kind:f>',
      'the learning rate across rounds: cosine:F or linear:F from --lr down to F x --lr in the last round, or constant (default)',
      lrSchedule,
    )
    .option(
      '--trim-fraction <f>',
      'trimmed-mean: the share of values dropped at each end, per coordinate (default 0.2)',
      number('--trim-fraction'),
    )
    .option(
      '--byzantine <n>',
      'krum: how many poisoned updates a round tolerates (default 0)',
      number('--byzantine'),
    )
    .option(
      '--krum-select <n>',
      'krum: how many of the best-scored updates are averaged (1 = Krum, more = multi-Krum; default 1)',
      number('--krum-select'),
    );
}

/** Which of `init`'s options a value comes from, by config field (the longest prefix that matches). */
const OPTION_OF_FIELD: Record<string, string> = {
  name: '--name',
  rounds: '--rounds',
  'lora.rank': '--rank',
  'lora.alpha': '--alpha',
  'lora.dropout': '--dropout',
  'lora.targets': '--targets',
  'training.localSteps': '--local-steps',
  'training.batchSize': '--batch-size',
  'training.lr': '--lr',
  'training.cutoffLen': '--cutoff-len',
  'training.template': '--template',
  'training.freezeLoraA': '--freeze-lora-a',
  'training.proximalMu': '--proximal-mu',
  'training.scaffold': '--scaffold',
  'training.lrSchedule': '--lr-schedule',
  'training.lrSchedule.finalFraction': '--lr-schedule KIND:F',
  'participantsPerRound.fraction': '--fraction',
  'participantsPerRound.minimum': '--min-participants',
  'participantsPerRound.overSelection': '--over-selection',
  'participantsPerRound.quorum': '--quorum',
  minUpdates: '--min-updates',
  roundDeadlineSeconds: '--deadline',
  'aggregation.rule': '--aggregation-rule',
  'aggregation.weightCap': '--weight-cap',
  'aggregation.clipping': '--clip',
  'aggregation.clipping.bound': '--clip fixed:B',
  'aggregation.clipping.multiplier': '--clip adaptive:M',
  'aggregation.trimFraction': '--trim-fraction',
  'aggregation.byzantine': '--byzantine',
  'aggregation.krumSelect': '--krum-select',
  'aggregation.serverOptimizer': '--server-optimizer',
  'aggregation.serverOptimizer.kind': '--server-optimizer KIND',
  'aggregation.serverOptimizer.lr': '--server-optimizer KIND:LR',
  'aggregation.serverOptimizer.beta1': '--server-beta1',
  'aggregation.serverOptimizer.beta2': '--server-beta2',
  'aggregation.serverOptimizer.tau': '--server-tau',
  'limits.maxUpdateNorm': '--max-update-norm',
  'limits.maxUploadBytes': '--max-upload-size',
  'limits.maxExampleCount': '--max-example-count',
  ...DP_OPTION_OF_FIELD,
  ...SECURE_OPTION_OF_FIELD,
};

/** `init`'s parsed options (commander's camelCase keys). */
export type InitOptions = { [key: string]: unknown };

/**
 * The settings `init`'s options give: those where `include(key)` holds (by commander's option
 * key), undefined elsewhere. Undefined means "not set here" to mergeSettings.
 */
export function settingsFromOptions(o: InitOptions, include: (key: string) => boolean): Patch {
  const pick = (key: string, f: (v: never) => unknown = (v) => v) =>
    include(key) && o[key] !== undefined ? f(o[key] as never) : undefined;
  return {
    name: pick('name'),
    rounds: pick('rounds'),
    lora: {
      rank: pick('rank'),
      alpha: pick('alpha'),
      dropout: pick('dropout'),
      targets: pick('targets', (t: string) => t.split(',').map((s) => s.trim())),
    },
    training: {
      localSteps: pick('localSteps'),
      batchSize: pick('batchSize'),
      lr: pick('lr'),
      cutoffLen: pick('cutoffLen'),
      template: pick('template'),
      freezeLoraA: pick('freezeLoraA'),
      proximalMu: pick('proximalMu'),
      scaffold: pick('scaffold'),
      lrSchedule: pick('lrSchedule'),
    },
    participantsPerRound: {
      fraction: pick('fraction', (f: number) => Math.min(1, f)),
      minimum: pick('minParticipants'),
      overSelection: pick('overSelection'),
      quorum: pick('quorum'),
    },
    minUpdates: pick('minUpdates'),
    roundDeadlineSeconds: pick('deadline'),
    aggregation: {
      rule: pick('aggregationRule'),
      weightCap: pick('weightCap'),
      clipping: pick('clip'),
      trimFraction: pick('trimFraction'),
      byzantine: pick('byzantine'),
      krumSelect: pick('krumSelect'),
      serverOptimizer: pick('serverOptimizer', (s: Patch) => ({
        ...s,
        beta1: o.serverBeta1,
        beta2: o.serverBeta2,
        tau: o.serverTau,
      })),
    },
    limits: {
      maxUpdateNorm: pick('maxUpdateNorm'),
      maxUploadBytes: pick('maxUploadSize'),
      maxExampleCount: pick('maxExampleCount'),
    },
    differentialPrivacy: dpFromOptions(pick),
  };
}

/**
 * The settings `init` writes: the options' defaults, the file, the options typed (see the header),
 * with differential privacy's defaults and calibration (dp-options.ts; its note pushed to `notes`),
 * checked as the config checks them. Throws FeditError('CLI_OPTION') naming the option, or the
 * file and field, a bad value came from.
 */
export function initSettings(o: InitOptions, command: Command, notes: string[] = []): Patch {
  const typed = (key: string) => {
    const source = command.getOptionValueSource(key);
    return source !== undefined && source !== 'default';
  };
  const refinements = {
    serverBeta1: '--server-beta1',
    serverBeta2: '--server-beta2',
    serverTau: '--server-tau',
  };
  for (const [key, flag] of Object.entries(refinements)) {
    if (o[key] !== undefined && o.serverOptimizer === undefined) {
      throw new FeditError('CLI_OPTION', `${flag} refines --server-optimizer KIND:LR: give that too`);
    }
  }
  const file = typeof o.settings === 'string' ? (readSettingsFile(o.settings) as Patch) : {};
  const fromFlags = settingsFromOptions(o, typed);
  const merged = mergeSettings(
    settingsFromOptions(o, (key) => !typed(key)),
    file,
    fromFlags,
  );
  const dpNote = applyDpSettings(merged, o, typed('aggregationRule') || has(file, 'aggregation.rule'));
  if (dpNote) notes.push(dpNote);
  applySecureAggregation(merged, file, o, typed);
  if (!merged.differentialPrivacy) withScaffoldByDefault(merged); // SCAFFOLD's c would leak under DP
  checkSettings(merged, (field) => {
    const fileHasIt = has(file, field) && !has(fromFlags, field);
    return fileHasIt ? `--settings ${o.settings as string}: ${field}` : optionOf(field);
  });
  return merged;
}

/**
 * SCAFFOLD unless the options or the file said otherwise, or the rule re-factors the adapter
 * (product-svd, which refuses it): the setting that learnt best on the learning bench, and the one
 * that holds with long local rounds (docs/learning.md, "The defaults, and why").
 */
function withScaffoldByDefault(settings: Patch): void {
  const rule = (isSection(settings.aggregation) && settings.aggregation.rule) || DEFAULT_AGGREGATION_RULE;
  if (typeof rule !== 'string' || !aggregationRuleNames().includes(rule) || aggregationRule(rule).refactors)
    return;
  const training = isSection(settings.training) ? settings.training : {};
  settings.training = { ...training, scaffold: training.scaffold ?? true };
}

/** Validates `settings` as a federation config; `source(field)` names where a field's value came from. */
function checkSettings(settings: Patch, source: (field: string) => string): void {
  const stand = {
    id: 'fed-option-check',
    baseModel: { identity: `sha256:${'0'.repeat(64)}`, name: 'check' },
  };
  let parsed: Patch;
  try {
    const config = validateFederationConfig({ ...settings, ...stand });
    requireKnownRule(config);
    parsed = config as unknown as Patch;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const where = source(err.field);
    const sep = err.problem.startsWith('must ') ? ' ' : ': ';
    throw new FeditError('CLI_OPTION', `${where}${sep}${err.problem}`, { cause: err });
  }
  // The parser drops fields it does not know; only a file can hold one, and it is a typo there.
  const unknown = fieldsMissingFrom(settings, parsed);
  if (unknown.length > 0) {
    throw new FeditError(
      'CLI_OPTION',
      `${source(unknown[0])} is not a federation setting (fedit coordinator init --help lists them; docs/federation.md has the fields)`,
    );
  }
}

/** Dotted paths set in `given` (recursing into sections) that `parsed` lacks. */
function fieldsMissingFrom(given: Patch, parsed: Patch, path = ''): string[] {
  return Object.entries(given).flatMap(([key, value]) => {
    const field = path ? `${path}.${key}` : key;
    if (!(key in parsed)) return [field];
    return isSection(value) && isSection(parsed[key]) ? fieldsMissingFrom(value, parsed[key], field) : [];
  });
}

/** Whether `patch` sets `field` or a section above it. */
function has(patch: Patch, field: string): boolean {
  let at: unknown = patch;
  for (const key of field.split('.')) {
    if (!isSection(at) || at[key] === undefined) return false;
    at = at[key];
    if (!isSection(at)) return true;
  }
  return true;
}

/** The option for a config field: the entry of the longest matching prefix. */
function optionOf(field: string): string {
  for (let parts = field.split('.'); parts.length > 0; parts.pop()) {
    const option = OPTION_OF_FIELD[parts.join('.')];
    if (option) return option;
  }
  return `federation config: ${field}`;
}
