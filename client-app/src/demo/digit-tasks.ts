// The second built-in family of checkable tasks, `digits`: operations on digit strings and on
// pairs of numbers, where the first family (tasks.ts) does one operation on one word. Some answers
// are the operand rearranged (sorted digits, the two numbers swapped) or filtered (only the even
// digits), some are one symbol found by looking at the whole operand (the largest digit), one is a
// word that classifies it (odd or even). Every answer is checked exactly.
//
// As for the first family, the built-in base model of both families (base-model.ts, recipe
// families ['letters', 'digits']) does each operation when asked by a terse command and has never
// seen these English instructions; the held-out wordings appear in no training data. Operands are
// drawn from large spaces (thousands of strings or pairs per category), so held-out operands are
// never trained on.
//
// Tried and left out: "the larger of two numbers" and "how often does this digit occur" (the
// 0.34 M-parameter base model did not learn them by command even in 2400 pretraining steps: 20 %
// and 37 % right, against 83-100 % for the four kept beside them).

import { DIGITS, randomInt, randomString, type TaskSpec } from './task-spec.ts';

export const DIGIT_CATEGORIES = ['increment', 'sort', 'swap', 'maxdigit', 'parity', 'evens'] as const;
export type DigitCategory = (typeof DIGIT_CATEGORIES)[number];

/** A number of `digits` digits without a leading zero. */
function randomNumber(random: () => number, digits: number): string {
  return String(randomInt(random, 10 ** (digits - 1), 10 ** digits - 1));
}

/** Two different numbers of 2 or 3 digits, space-separated: `482 97`. */
function numberPair(random: () => number): string {
  for (;;) {
    const a = randomNumber(random, randomInt(random, 2, 3));
    const b = randomNumber(random, randomInt(random, 2, 3));
    if (a !== b) return `${a} ${b}`;
  }
}

/** 4 to 6 digits with at least one even digit. */
function withAnEvenDigit(random: () => number): string {
  for (;;) {
    const s = randomString(DIGITS, [4, 6], random);
    if (/[02468]/.test(s)) return s;
  }
}

export const DIGIT_SPECS: Readonly<Record<DigitCategory, TaskSpec>> = {
  increment: {
    instruction: 'Add one to every digit.',
    trainingWordings: [
      'Add one to every digit.',
      'Increase each digit by one, with 9 becoming 0.',
      'Raise every digit by 1.',
    ],
    heldOutWordings: ['Make each digit one bigger.', 'Replace every digit by the digit after it.'],
    operand: (random) => randomString(DIGITS, [3, 5], random),
    solve: (s) => [...s].map((d) => String((Number(d) + 1) % 10)).join(''),
  },
  sort: {
    instruction: 'Sort the digits.',
    trainingWordings: [
      'Sort the digits.',
      'Put the digits in increasing order.',
      'Arrange the digits from smallest to largest.',
    ],
    heldOutWordings: ['Order these digits from low to high.', 'List the digits in ascending order.'],
    operand: (random) => randomString(DIGITS, [3, 5], random, true),
    solve: (s) => [...s].sort().join(''),
  },
  swap: {
    instruction: 'Swap the two numbers.',
    trainingWordings: [
      'Swap the two numbers.',
      'Write the second number first and the first number second.',
      'Exchange the order of the two numbers.',
    ],
    heldOutWordings: ['Put these two numbers the other way round.', 'Reverse the order of the pair.'],
    operand: numberPair,
    solve: (pair) => pair.split(' ').reverse().join(' '),
  },
  maxdigit: {
    instruction: 'What is the largest digit?',
    trainingWordings: [
      'What is the largest digit?',
      'Find the highest digit in the number.',
      'Which digit is the biggest?',
    ],
    heldOutWordings: ['Name the greatest digit that appears.', 'Tell me the top digit of this string.'],
    operand: (random) => randomString(DIGITS, [3, 6], random),
    solve: (s) => [...s].sort().at(-1)!,
  },
  parity: {
    instruction: 'Is the number odd or even?',
    trainingWordings: [
      'Is the number odd or even?',
      'Say whether this number is even or odd.',
      'Tell me if the number is odd or if it is even.',
    ],
    heldOutWordings: ['Odd number or even number?', 'Decide if it is an even or an odd number.'],
    operand: (random) => randomNumber(random, randomInt(random, 2, 5)),
    solve: (n) => (Number(n.at(-1)) % 2 === 0 ? 'even' : 'odd'),
  },
  evens: {
    instruction: 'Keep only the even digits.',
    trainingWordings: [
      'Keep only the even digits.',
      'Remove every odd digit.',
      'Write just the digits that are even.',
    ],
    heldOutWordings: ['Drop the odd digits and keep the rest.', 'Filter out all digits that are odd.'],
    operand: withAnEvenDigit,
    solve: (s) => [...s].filter((d) => Number(d) % 2 === 0).join(''),
  },
};
