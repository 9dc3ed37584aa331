// The federation accountant: rounds composed under RDP, epsilon per delta, rounds left in a
// budget, and its state as decimal strings that rebuild the same numbers bit for bit.

import test from 'ava';
import {
  computeRdp,
  DEFAULT_RDP_ORDERS,
  PrivacyAccountant,
  privacySpent,
  rdpSampledGaussian,
} from '@fedit/shared';

const A = { selected: 10, eligible: 1000, noiseMultiplier: 1.1 };
const B = { selected: 30, eligible: 600, noiseMultiplier: 0.9 };

test('1000 rounds at q = 10/1000, sigma = 1.1 spend the epsilon of rdp-vectors.py (1.7117700912207567 at order 9.6)', (t) => {
  const accountant = new PrivacyAccountant();
  for (let r = 0; r < 1000; r++) accountant.addRound(A);
  const spent = accountant.spent(1e-5);
  t.true(Math.abs(spent.epsilon - 1.7117700912207567) < 1e-9, String(spent.epsilon));
  t.is(spent.order, 9.6);
  t.is(accountant.rounds, 1000);
  t.deepEqual(accountant.toState(), {
    orders: DEFAULT_RDP_ORDERS.map(String),
    history: [{ selected: 10, eligible: 1000, noiseMultiplier: '1.1', rounds: 1000 }],
  });
});

test('the total follows the header: per-entry products summed in history order, runs merged', (t) => {
  const accountant = new PrivacyAccountant();
  for (const round of [A, A, A, B, B, A]) accountant.addRound(round);
  const state = accountant.toState();
  t.deepEqual(
    state.history.map((e) => e.rounds),
    [3, 2, 1],
  );
  const per = (p: typeof A) =>
    DEFAULT_RDP_ORDERS.map((a) => rdpSampledGaussian(p.selected / p.eligible, p.noiseMultiplier, a));
  const a = per(A);
  const b = per(B);
  const expected = DEFAULT_RDP_ORDERS.map((_, k) => 0 + a[k] * 3 + b[k] * 2 + a[k] * 1);
  t.deepEqual(accountant.rdp(), expected);
  // And equals the composition computeRdp gives, up to the order of additions.
  const composed = computeRdp({ q: 0.01, noiseMultiplier: 1.1, steps: 4 }).map(
    (x, k) => x + computeRdp({ q: 0.05, noiseMultiplier: 0.9, steps: 2 })[k],
  );
  accountant.rdp().forEach((x, k) => t.true(Math.abs(x - composed[k]) <= 1e-12 * composed[k]));
});

test('fromState(toState()) through JSON rebuilds the same RDP and epsilon bit for bit', (t) => {
  const accountant = new PrivacyAccountant();
  for (const round of [A, B, B, { selected: 7, eligible: 333, noiseMultiplier: 1.2345678901234567 }])
    accountant.addRound(round);
  const text = JSON.stringify(accountant.toState());
  const rebuilt = PrivacyAccountant.fromState(JSON.parse(text));
  t.deepEqual(rebuilt.rdp(), accountant.rdp());
  t.deepEqual(rebuilt.spent(1e-6), accountant.spent(1e-6));
  t.is(JSON.stringify(rebuilt.toState()), text);
  t.is(rebuilt.toState().history[2].noiseMultiplier, '1.2345678901234567');
});

test('custom orders are kept and used', (t) => {
  const orders = [2, 4, 8, 16, 32];
  const accountant = new PrivacyAccountant(orders);
  accountant.addRound(A);
  t.deepEqual(accountant.toState().orders, ['2', '4', '8', '16', '32']);
  t.deepEqual(
    accountant.spent(1e-5),
    privacySpent(orders, computeRdp({ q: 0.01, noiseMultiplier: 1.1, steps: 1, orders }), 1e-5),
  );
});

test('roundsUntil: the largest number of further rounds within the budget', (t) => {
  const accountant = new PrivacyAccountant();
  for (let r = 0; r < 5; r++) accountant.addRound(B);
  const n = accountant.roundsUntil(4, 1e-5, A);
  t.true(n > 0);
  const after = PrivacyAccountant.fromState(accountant.toState());
  for (let r = 0; r < n; r++) after.addRound(A);
  t.true(after.spent(1e-5).epsilon <= 4);
  after.addRound(A);
  t.true(after.spent(1e-5).epsilon > 4);
  // Already over: none; nobody selected: nothing is spent, so the limit.
  t.is(after.roundsUntil(1, 1e-5, A), 0);
  t.is(accountant.roundsUntil(4, 1e-5, { selected: 0, eligible: 10, noiseMultiplier: 1 }, 500), 500);
});

test('state and rounds are validated with the field named', (t) => {
  const accountant = new PrivacyAccountant();
  t.throws(() => accountant.addRound({ selected: 11, eligible: 10, noiseMultiplier: 1 }), {
    message: /round\.selected/,
  });
  t.throws(() => accountant.addRound({ selected: 1, eligible: 0, noiseMultiplier: 1 }), {
    message: /round\.eligible/,
  });
  t.throws(() => accountant.addRound({ selected: 1, eligible: 10, noiseMultiplier: 0 }), {
    message: /round\.noiseMultiplier/,
  });
  t.throws(() => accountant.roundsUntil(0, 1e-5, A), { message: /^budget/ });
  t.throws(() => accountant.spent(1), { message: /^delta/ });
  const good = {
    orders: ['2', '1.5'],
    history: [{ selected: 1, eligible: 10, noiseMultiplier: '1.1', rounds: 2 }],
  };
  t.notThrows(() => PrivacyAccountant.fromState(good));
  const bad = (patch: object) => ({ ...good, ...patch });
  const entry = (patch: object) => bad({ history: [{ ...good.history[0], ...patch }] });
  t.throws(() => PrivacyAccountant.fromState(bad({ orders: ['1'] })), { message: /orders\[0\]/ });
  t.throws(() => PrivacyAccountant.fromState(bad({ orders: [2] })), {
    message: /state\.orders\[0\] must be a decimal/,
  });
  t.throws(() => PrivacyAccountant.fromState(entry({ noiseMultiplier: '1.10' })), {
    message: /history\[0\]\.noiseMultiplier must be written as 1\.1/,
  });
  t.throws(() => PrivacyAccountant.fromState(entry({ noiseMultiplier: '-1' })), {
    message: /history\[0\]\.noiseMultiplier/,
  });
  t.throws(() => PrivacyAccountant.fromState(entry({ noiseMultiplier: '1e400' })), {
    message: /history\[0\]\.noiseMultiplier/,
  });
  t.throws(() => PrivacyAccountant.fromState(entry({ rounds: 0 })), { message: /history\[0\]\.rounds/ });
  t.throws(() => PrivacyAccountant.fromState(entry({ selected: 11 })), { message: /history\[0\]\.selected/ });
  t.throws(() => PrivacyAccountant.fromState(bad({ history: [good.history[0], good.history[0]] })), {
    message: /history\[1\] repeats/,
  });
  t.throws(() => PrivacyAccountant.fromState(bad({ history: 'x' })), { message: /state\.history/ });
});
