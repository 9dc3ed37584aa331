// The simulation's choices as a person types them, shared by `fedit simulate` and
// `npm run bench -- learning`, each checked with an error that names the option.

import { FeditError } from '@fedit/shared';
import { TASK_FAMILIES } from '../demo/tasks.ts';
import type { Attack } from './adversary.ts';
import type { BuiltinFamilyChoice } from './dataset.ts';
import type { RuleChoice } from './bench.ts';
import { rulePreset } from './presets.ts';
import type { SplitSpec } from './split.ts';

/** `shards:K` (each participant holds K categories) or `dirichlet:ALPHA`. */
export function parseSplit(text: string): SplitSpec {
  const [kind, value, ...rest] = text.split(':');
  const v = Number(value);
  if (rest.length === 0 && kind === 'shards' && Number.isInteger(v) && v >= 1) {
    return { kind: 'shards', categoriesPerParticipant: v };
  }
  if (rest.length === 0 && kind === 'dirichlet' && v > 0 && Number.isFinite(v))
    return { kind: 'dirichlet', alpha: v };
  throw new FeditError(
    'CLI_OPTION',
    `--split must be shards:K (K categories per participant, a whole number >= 1) or dirichlet:ALPHA (ALPHA > 0), got "${text}"`,
  );
}

/** The built-in datasets `--dataset` names: `builtin` is the demo's family. */
export const BUILTIN_DATASETS = [
  'builtin',
  ...Object.keys(TASK_FAMILIES).map((f) => `builtin:${f}`),
  'builtin:all',
] as const;

/** `builtin` (the letters family), `builtin:FAMILY` or `builtin:all` (every family): which built-in tasks. */
export function parseDataset(text: string, option = '--dataset'): BuiltinFamilyChoice {
  if (text === 'builtin') return 'letters';
  const [kind, family, ...rest] = text.split(':');
  if (kind === 'builtin' && rest.length === 0 && (family === 'all' || Object.hasOwn(TASK_FAMILIES, family)))
    return family as BuiltinFamilyChoice;
  throw new FeditError(
    'CLI_OPTION',
    `${option} must be one of ${BUILTIN_DATASETS.join(', ')}, got "${text}"`,
  );
}

/** `scale:FACTOR`, `signflip` or `examples:COUNT`: how the poisoning participant tampers. */
export function parseAttack(text: string): Attack {
  const [kind, value, ...rest] = text.split(':');
  const v = Number(value);
  if (rest.length === 0) {
    if (kind === 'signflip' && value === undefined) return { kind: 'signflip' };
    if (kind === 'scale' && Number.isFinite(v) && value !== '') return { kind: 'scale', factor: v };
    if (kind === 'examples' && Number.isSafeInteger(v) && v >= 1) return { kind: 'examples', count: v };
  }
  throw new FeditError(
    'CLI_OPTION',
    `--attack must be scale:FACTOR, signflip or examples:COUNT (a whole number >= 1), got "${text}"`,
  );
}

/** A comma-separated list of rule presets (RULE_PRESETS), given as `option`. */
export function parseRules(text: string, option = '--rules'): RuleChoice[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new FeditError('CLI_OPTION', `${option} names no rule`);
  return names.map((name) => {
    try {
      return { name, settings: rulePreset(name) };
    } catch (err) {
      throw new FeditError('CLI_OPTION', `${option}: ${(err as Error).message}`);
    }
  });
}

/** `8,4,2`: each participant's own LoRA rank, in participant order, given as `option`. */
export function parseRanks(text: string, option = '--ranks'): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const ranks = parts.map(Number);
  if (parts.some((p) => p === '') || !ranks.every((r) => Number.isSafeInteger(r) && r >= 1)) {
    throw new FeditError(
      'CLI_OPTION',
      `${option} must be whole numbers >= 1 separated by commas, one per participant (e.g. 8,4,2), got "${text}"`,
    );
  }
  return ranks;
}

/** Seeds 1..count. */
export function seedList(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i + 1);
}
