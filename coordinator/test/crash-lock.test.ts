// The federation folder's writer lock after crashes: a lock left by a process that is gone, by an
// earlier process with this very pid (a restarted container), or torn mid-write is taken over; a
// lock of a running coordinator — in another process or in this one — refuses a second writer,
// naming the holder; a start that fails (its port is taken) says so and releases the lock. (A
// lock left by a SIGKILLed `fedit coordinator start` is crash.test.ts.)

import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LOCK_FILE, revokeParticipant, startCoordinator } from '../src/index.ts';
import { fedit } from './helpers/cli.ts';
import { initTestFederation } from './helpers/federation.ts';

const holder = (pid: number) =>
  JSON.stringify({ pid, purpose: 'coordinator', since: '2020-01-01T00:00:00.000Z' }) + '\n';

test('stale locks are taken over; live ones refuse a second writer', async (t) => {
  const root = await initTestFederation(t);
  const lock = join(root, LOCK_FILE);
  const start = () => startCoordinator({ dir: root, port: 0, noRounds: true });

  // A lock naming this process's pid that this process never took (a restarted container).
  writeFileSync(lock, holder(process.pid));
  let running = await start();
  t.regex(readFileSync(lock, 'utf8'), new RegExp(`"pid":${process.pid}`));
  // Now it is held: a second coordinator in this process is refused; a revocation is asked of
  // the running coordinator (which answers for its log: no such participant).
  const second = await t.throwsAsync(start(), { code: 'FEDERATION_BUSY' });
  t.true(second.message.includes(`process ${process.pid} (coordinator`), second.message);
  await t.throwsAsync(revokeParticipant(root, '0'.repeat(32), 'x'), { code: 'PARTICIPANT_UNKNOWN' });
  await running.close();
  t.false(existsSync(lock), 'released at close');

  // A torn lock file (a crash while writing it).
  writeFileSync(lock, '{"pid":');
  running = await start();
  await running.close();

  // A lock of another process that is running (the test runner that started this one).
  writeFileSync(lock, holder(process.ppid));
  const busy = await t.throwsAsync(start(), { code: 'FEDERATION_BUSY' });
  t.regex(busy.message, new RegExp(`in use by process ${process.ppid} \\(coordinator, since 2020`));
  t.is(readFileSync(lock, 'utf8'), holder(process.ppid), "another process's lock is left alone");

  // A start that fails after taking the lock (its port is in use) releases it, and says why.
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  t.teardown(() => squatter.close());
  const { port } = squatter.address() as AddressInfo;
  writeFileSync(lock, holder(2 ** 22 + 12345)); // above Linux's pid_max: no such process
  const taken = await t.throwsAsync(startCoordinator({ dir: root, port, noRounds: true }), {
    code: 'COORDINATOR_LISTEN',
  });
  t.regex(taken.message, new RegExp(`127\\.0\\.0\\.1:${port}: the address is in use`));
  t.false(existsSync(lock), 'the lock is released');

  // The same through the command an operator runs: one line, no stack trace.
  const cli = await fedit('coordinator', 'start', root, '--port', String(port));
  t.is(cli.code, 1, cli.stderr);
  t.regex(cli.stderr, /^fedit: cannot listen on 127\.0\.0\.1:\d+: the address is in use/);
  t.notRegex(cli.stderr, /^\s+at /m);
  t.false(existsSync(lock));
  running = await start();
  await running.close();
});
