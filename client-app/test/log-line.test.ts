// The operator's log lines (cli/log-line.ts, cli/coordinator-log.ts): ISO-8601 UTC time and a
// level on every text line, one parseable JSON object a line with --log-format json, and
// participants named "display name (id8)".

import test from 'ava';
import { logCoordinatorEvent } from '../src/cli/coordinator-log.ts';
import { LineLog, participantLabel } from '../src/cli/log-line.ts';

const ALICE = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const BOB = 'b0b0b0b0ffffffff0000000000000000000000000000000000000000000000ff';
const names = (id: string) => (id === ALICE ? 'Alice at clinic 3' : undefined);

function capture(format: 'text' | 'json', timestamps?: boolean) {
  const lines: string[] = [];
  const log = new LineLog({
    format,
    federation: 'fed-123',
    now: () => new Date(Date.UTC(2026, 11, 7, 21, 20, 0, 123)),
    write: (line) => lines.push(line),
    ...(timestamps !== undefined && { timestamps }),
  });
  return { log, lines };
}

test('text lines start with the ISO-8601 UTC time and the level', (t) => {
  const { log, lines } = capture('text');
  log.info('listening', 'listening on http://127.0.0.1:7150');
  log.warn('round-aborted', 'round 2 aborted: no updates');
  log.error('stop-failed', 'could not stop');
  t.deepEqual(lines, [
    '2026-12-07T21:20:00.123Z INFO  listening on http://127.0.0.1:7150\n',
    '2026-12-07T21:20:00.123Z WARN  round 2 aborted: no updates\n',
    '2026-12-07T21:20:00.123Z ERROR could not stop\n',
  ]);
  const plain = capture('text', false);
  plain.log.info('status', '[training] round 1');
  t.deepEqual(plain.lines, ['[training] round 1\n'], 'a terminal a person watches gets the message alone');
});

test('json lines are one object each: time, level, federation, event, msg, then the fields', (t) => {
  const { log, lines } = capture('json');
  log.info('round-open', 'round 1 open', { round: 1, time: 'forged', level: 'error' });
  t.is(lines.length, 1);
  t.true(lines[0].endsWith('}\n') && !lines[0].slice(0, -1).includes('\n'));
  const parsed = JSON.parse(lines[0]) as Record<string, unknown>;
  t.deepEqual(Object.keys(parsed), ['time', 'level', 'federation', 'event', 'msg', 'round']);
  t.like(parsed, {
    time: '2026-12-07T21:20:00.123Z',
    level: 'info',
    federation: 'fed-123',
    event: 'round-open',
    msg: 'round 1 open',
    round: 1,
  });
});

test('coordinator events name participants "display name (id8)" and carry id and name in JSON', (t) => {
  t.is(participantLabel(ALICE, 'Alice at clinic 3'), 'Alice at clinic 3 (a1b2c3d4)');
  t.is(participantLabel(BOB), 'b0b0b0b0');

  const text = capture('text');
  logCoordinatorEvent(
    text.log,
    { type: 'update-refused', round: 3, participant: ALICE, reason: 'late' },
    names,
  );
  logCoordinatorEvent(
    text.log,
    {
      type: 'round-closed',
      round: 3,
      adapter: 'sha256:00',
      updates: 1,
      dropped: [{ participant: BOB, reason: 'no update before the deadline' }],
    },
    names,
  );
  t.deepEqual(text.lines, [
    '2026-12-07T21:20:00.123Z WARN  round 3: refused the update of Alice at clinic 3 (a1b2c3d4): late\n',
    '2026-12-07T21:20:00.123Z INFO  round 3 closed: 1 updates -> sha256:00, dropped b0b0b0b0 (no update before the deadline)\n',
  ]);

  const json = capture('json');
  logCoordinatorEvent(json.log, { type: 'readiness', participant: ALICE, ready: true }, names);
  logCoordinatorEvent(json.log, { type: 'enrolled', participant: BOB, displayName: 'Bob' }, names);
  const [ready, enrolled] = json.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(ready, {
    level: 'info',
    event: 'readiness',
    participant: ALICE,
    displayName: 'Alice at clinic 3',
    ready: true,
    msg: 'Alice at clinic 3 (a1b2c3d4) ready',
  });
  t.like(enrolled, {
    event: 'enrolled',
    participant: BOB,
    displayName: 'Bob',
    msg: 'Bob (b0b0b0b0) enrolled',
  });
});
