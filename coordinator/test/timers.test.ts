// Long timers (server/timers.ts): delays past setTimeout's 2^31 - 1 ms are waited for in steps.
import test from 'ava';
import { MAX_TIMEOUT_MS, setLongTimeout } from '../src/server/timers.ts';

test('a delay is waited for in steps, and the callback runs once, not before the delay', async (t) => {
  const started = Date.now();
  const fired: number[] = [];
  await new Promise<void>((resolve) => {
    setLongTimeout(
      () => {
        fired.push(Date.now() - started);
        resolve();
      },
      120,
      25, // steps of 25 ms stand in for steps of 24.8 days
    );
  });
  await new Promise((r) => setTimeout(r, 60));
  t.is(fired.length, 1);
  t.true(fired[0] >= 119, `fired after ${fired[0]} ms`);
});

test('a cancelled long timer never fires, and a delay past the setTimeout limit does not fire at once', async (t) => {
  let fired = 0;
  const stepped = setLongTimeout(() => fired++, 80, 10);
  stepped.cancel();
  const long = setLongTimeout(() => fired++, MAX_TIMEOUT_MS * 3); // setTimeout would fire this in 1 ms
  await new Promise((r) => setTimeout(r, 150));
  long.cancel();
  long.cancel(); // idempotent
  t.is(fired, 0);
});

test('a negative or non-finite delay fires on the next turn, as setTimeout does', async (t) => {
  const order: string[] = [];
  await Promise.all(
    [-5, Number.NaN].map(
      (delay) =>
        new Promise<void>((resolve) => {
          setLongTimeout(() => {
            order.push(String(delay));
            resolve();
          }, delay);
          order.push('scheduled');
        }),
    ),
  );
  t.deepEqual(order, ['scheduled', 'scheduled', '-5', 'NaN']);
});
