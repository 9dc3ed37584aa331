// What a built-in task category is, whatever its family: English instructions for training, a
// disjoint set of held-out wordings, a seeded operand generator and an exact solver. The families
// themselves are tasks.ts (one operation on one word) and digit-tasks.ts (digit strings and pairs
// of numbers); tasks.ts holds the registry and the generation both share.

/** One category of checkable tasks. */
export interface TaskSpec {
  /** The English instruction the demo's data uses. */
  instruction: string;
  /** Wordings training data may use; the first is `instruction`. */
  trainingWordings: readonly string[];
  /** Wordings no training data uses (disjoint from `trainingWordings`): for held-out evaluation. */
  heldOutWordings: readonly string[];
  /** A random operand (the record's context), drawn from `random` only. */
  operand(random: () => number): string;
  /** The one right answer for `operand`. */
  solve(operand: string): string;
}

export const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
export const DIGITS = '0123456789';

/** A whole number uniformly in [lo, hi]. */
export function randomInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

/**
 * A random string of `symbols` whose length is uniform in `length`; with `distinct`, no symbol
 * twice (so a sorted string is unambiguous).
 */
export function randomString(
  symbols: string,
  length: readonly [number, number],
  random: () => number,
  distinct = false,
): string {
  const n = randomInt(random, length[0], length[1]);
  if (distinct && n > symbols.length) throw new Error(`cannot draw ${n} distinct of '${symbols}'`);
  let out = '';
  while (out.length < n) {
    const c = symbols[Math.floor(random() * symbols.length)];
    if (distinct && out.includes(c)) continue;
    out += c;
  }
  return out;
}
