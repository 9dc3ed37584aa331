// Options several `fedit` commands share, and the one check every numeric option goes through, so a
// bad value fails the same way everywhere: `fedit: --rank must be a whole number >= 1, got "x"`.

import { Option, type Command } from 'commander';
import { FeditError } from '@fedit/shared';
import type { LoraConfig, LoraTarget } from '@fedit/kernels';

/**
 * A parser for a numeric option `name`: finite, whole if `integer`, >= `min`, > `above`,
 * < `below`. `what` names the accepted values in the error when the bounds alone would say it badly.
 */
export function number(
  name: string,
  {
    integer = false,
    min = -Infinity,
    above,
    below,
    what,
  }: { integer?: boolean; min?: number; above?: number; below?: number; what?: string } = {},
) {
  return (raw: string): number => {
    const v = Number(raw);
    const ok =
      raw.trim() !== '' &&
      Number.isFinite(v) &&
      (!integer || Number.isInteger(v)) &&
      v >= min &&
      (above === undefined || v > above) &&
      (below === undefined || v < below);
    if (!ok) {
      const kind = integer ? 'a whole number' : 'a number';
      const bound = above !== undefined ? ` above ${above}` : min > -Infinity ? ` >= ${min}` : '';
      throw new FeditError('CLI_OPTION', `${name} must be ${what ?? kind + bound}, got "${raw}"`);
    }
    return v;
  };
}

/** A number > 0 (whole if `integer`). */
export const positive = (name: string, integer = false) =>
  number(name, { integer, above: 0, what: `a positive ${integer ? 'whole ' : ''}number` });

/** A whole number >= `min`. */
export const wholeNumber = (name: string, min: number) => number(name, { integer: true, min });

/** A number in [0, 1), as a LoRA dropout probability must be. */
export const probability = (name: string) =>
  number(name, { min: 0, below: 1, what: 'a probability in [0, 1)' });

/** For repeatable options (`--data a.jsonl --data b.jsonl`). */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export const formatOption = () =>
  new Option('--format <name>', 'dataset format (default: detected per file)').choices([
    'alpaca',
    'dolly',
    'sharegpt',
    'messages',
  ]);

export const providerOption = () =>
  new Option('--provider <name>', 'where to compute: cpu, or a GPU through webgpu, cuda or dml')
    .choices(['cpu', 'webgpu', 'cuda', 'dml'])
    .default('cpu');

/** --rank, --alpha, --dropout, --targets: the LoRA a local run trains, or a federation's. */
export function addLoraOptions(command: Command): Command {
  return command
    .option('--rank <n>', 'LoRA rank', positive('--rank', true), 16)
    .option('--alpha <n>', 'LoRA alpha (scale alpha/rank)', positive('--alpha'), 16)
    .option('--dropout <p>', 'LoRA dropout', probability('--dropout'), 0.05)
    .option(
      '--targets <list>',
      'modules to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)',
      'q_proj,v_proj',
    );
}

/** The LoraConfig those options give. */
export function loraFromOptions(o: {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string;
}): LoraConfig {
  return {
    rank: o.rank,
    alpha: o.alpha,
    dropout: o.dropout,
    targets: String(o.targets)
      .split(',')
      .map((t) => t.trim()) as LoraTarget[],
  };
}
