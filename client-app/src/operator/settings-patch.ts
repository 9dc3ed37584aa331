// Federation settings given in parts: a --settings file (`fedit coordinator init`, `fedit
// simulate`, the learning bench), the options a person typed, a simulation's rule preset. One
// reader of such a file and one way to lay the parts over each other, so every command treats a
// settings file alike.
//
// Merging: later layers win. A section (lora, training, participantsPerRound, aggregation,
// limits) merges key by key; a key's value (clipping, serverOptimizer, lrSchedule, targets) is
// replaced whole. An undefined value means "not set here", and a section left empty sets nothing.

import { readFileSync } from 'node:fs';
import type { FederationSettings } from '@fedit/coordinator';
import { FeditError } from '@fedit/shared';

/** Federation settings with every section partial: what a preset or a --settings file changes. */
export type SettingsPatch = {
  [K in keyof FederationSettings]?: FederationSettings[K] extends readonly unknown[]
    ? FederationSettings[K]
    : FederationSettings[K] extends object
      ? Partial<FederationSettings[K]>
      : FederationSettings[K];
};

type Section = { [key: string]: unknown };

const isSection = (v: unknown): v is Section => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `base` with each of `layers` laid over it in turn (see the header). */
export function mergeSettings<Base extends object>(base: Base, ...layers: object[]): Base {
  const out: Section = {};
  for (const layer of [base, ...layers]) {
    for (const [key, value] of Object.entries(layer)) {
      const set = isSection(value) ? definedOnly(value) : value;
      if (set === undefined || (isSection(set) && Object.keys(set).length === 0)) continue;
      out[key] = isSection(set) && isSection(out[key]) ? { ...out[key], ...set } : set;
    }
  }
  return out as Base;
}

function definedOnly(section: Section): Section {
  const out: Section = {};
  for (const [key, value] of Object.entries(section)) {
    if (value === undefined) continue;
    out[key] = isSection(value) ? definedOnly(value) : value;
  }
  return out;
}

/**
 * A --settings file: a JSON object of federation settings, without id and baseModel (the id is
 * drawn at random, the base model is the one given). Its fields are checked where the settings
 * are used, by the federation config's own parser.
 */
export function readSettingsFile(path: string): SettingsPatch {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const why =
      err instanceof SyntaxError
        ? `is not valid JSON: ${err.message}`
        : `cannot be read: ${(err as Error).message}`;
    throw new FeditError('CLI_OPTION', `--settings ${path} ${why}`);
  }
  if (!isSection(raw)) {
    throw new FeditError('CLI_OPTION', `--settings ${path} must hold a JSON object of federation settings`);
  }
  for (const key of ['id', 'baseModel']) {
    if (key in raw) {
      throw new FeditError(
        'CLI_OPTION',
        `--settings ${path}: ${key} cannot be set (the id is drawn at random, the base model comes from --model)`,
      );
    }
  }
  return raw as SettingsPatch;
}
