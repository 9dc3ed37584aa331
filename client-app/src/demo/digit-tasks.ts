// The second built-in family of checkable tasks, `digits`: operations on digit strings and on
// pairs of numbers, where the first family (tasks.ts) does one operation on one word. Some answers
// are one symbol picked by comparing the whole operand (the largest digit, the larger number), some
// are the operand rearranged (sorted) or filtered (only even digits), one is a count of a digit the
// context names. Every answer is checked exactly.
//
// As for the first family, the built-in base model (base-model.ts) does each operation when asked
// by a terse command and has never seen these English instructions; the held-out wordings appear
// in no training data. Operands are drawn from large spaces (thousands of strings or pairs per
// category), so held-out operands are never trained on.

import { DIGITS, randomInt, randomString, type TaskSpec } from './task-spec.ts';

export const DIGIT_CATEGORIES = ['increment', 'sort', 'larger', 'maxdigit', 'countdigit', 'evens'] as const;
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

/** A digit and a string of 4 to 7 digits over 3 symbols (one of them the digit), `7: 27177`. */
function digitAndString(random: () => number): string {
  const pool = randomString(DIGITS, [3, 3], random, true);
  const digit = pool[Math.floor(random() * pool.length)];
  return `${digit}: ${randomString(pool, [4, 7], random)}`;
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
  larger: {
    instruction: 'Which number is larger?',
    trainingWordings: [
      'Which number is larger?',
      'Give the bigger of the two numbers.',
      'Write the greater number.',
    ],
    heldOutWordings: [
      'Of these two numbers, which is the maximum?',
      'Pick the number with the higher value.',
    ],
    operand: numberPair,
    solve: (pair) => {
      const [a, b] = pair.split(' ').map(Number);
      return String(Math.max(a, b));
    },
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
  countdigit: {
    instruction: 'How many times does the digit occur?',
    trainingWordings: [
      'How many times does the digit occur?',
      'Count the occurrences of the given digit.',
      'How often does that digit appear in the string?',
    ],
    heldOutWordings: [
      'Tally how many copies of the digit there are.',
      'Say how frequently the digit shows up.',
    ],
    operand: digitAndString,
    solve: (context) => {
      const [digit, s] = context.split(': ');
      return String([...s].filter((d) => d === digit).length);
    },
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
