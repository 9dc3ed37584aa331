// The held-out split for evaluation. Each distinct conversation gets a rank from a hash of
// (seed, conversation), and the lowest-ranked ones are held out. So the split depends on the
// seed and on what the conversations say, not on where they stand in the file: reordering the
// file, or adding records, leaves every other conversation on its side. Copies of one
// conversation are ranked together and always land on the same side, so the held-out set never
// holds a conversation the model trained on.

import { createHash } from 'node:crypto';
import { conversationKey } from './conversation-key.ts';
import { DatasetError } from './errors.ts';
import type { Conversation } from './types.ts';

export interface HeldOutOptions {
  /** The share of examples to hold out, in (0, 1). Give this or count. */
  fraction?: number;
  /** How many examples to hold out. Give this or fraction. */
  count?: number;
  /**
   * With fraction: hold out at most this many, and never all (a participant's held-out slice is
   * min(10%, 32), none of a single example).
   */
  max?: number;
  seed: number | string;
}

export interface HeldOutSplit<T> {
  /** In their original order. */
  train: T[];
  /** In their original order. */
  heldOut: T[];
}

/** How many examples `options` asks to hold out of `total`. */
export function heldOutCount(total: number, options: HeldOutOptions): number {
  const { fraction, count } = options;
  if ((fraction === undefined) === (count === undefined)) {
    throw new DatasetError('DATASET_OPTIONS', 'give the held-out size as either a fraction or a count');
  }
  let n: number;
  if (fraction !== undefined) {
    if (!(fraction > 0 && fraction < 1)) {
      throw new DatasetError(
        'DATASET_OPTIONS',
        `the held-out fraction must be between 0 and 1, not ${fraction}`,
      );
    }
    n = Math.max(1, Math.round(fraction * total));
    if (options.max !== undefined) {
      n = Math.min(n, options.max, total - 1);
      if (n <= 0) return 0; // a single example (or none) is all training
    }
  } else {
    if (!Number.isInteger(count) || count! < 1) {
      throw new DatasetError(
        'DATASET_OPTIONS',
        `the held-out count must be a positive integer, not ${count}`,
      );
    }
    n = count!;
  }
  if (n >= total) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      `cannot hold out ${n} of ${total} examples and still train on some; hold out fewer`,
    );
  }
  return n;
}

/**
 * Splits `examples` into train and held-out parts. The held-out part has exactly the size asked
 * for unless copies of a conversation make that impossible (it is then a little smaller, never
 * larger: groups of copies are not split).
 */
export function splitHeldOut<T extends Conversation>(
  examples: readonly T[],
  options: HeldOutOptions,
): HeldOutSplit<T> {
  const want = heldOutCount(examples.length, options);
  const groups = new Map<string, number[]>();
  examples.forEach((example, i) => {
    const key = conversationKey(example);
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  const seed = String(options.seed);
  const ranked = [...groups].map(([key, members]) => ({
    rank: createHash('sha256').update(`${seed}\0${key}`).digest('hex'),
    members,
  }));
  ranked.sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));

  const held = new Set<number>();
  for (const { members } of ranked) {
    if (held.size === want) break;
    if (held.size + members.length <= want) for (const i of members) held.add(i);
  }
  const split: HeldOutSplit<T> = { train: [], heldOut: [] };
  examples.forEach((example, i) => (held.has(i) ? split.heldOut : split.train).push(example));
  return split;
}
