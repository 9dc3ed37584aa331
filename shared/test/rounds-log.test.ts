// The round log on disk: append-only JSONL, fsynced, checked before every append; a crash
// mid-append leaves one torn last line that is reported and repaired, while damage anywhere else
// is reported and never repaired.

import test from 'ava';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  canonicalJson,
  readRoundLog,
  repairRoundLog,
  RoundLog,
  RoundLogError,
  selectParticipants,
  verifyRoundLog,
  ZERO_HASH,
  type RoundLogErrorCode,
  type RoundLogOptions,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(4));
const hashOf = (c: string) => `sha256:${c.repeat(64)}`;

/** A counted update of `participant` in federation 'fed', with its signed envelope. */
function counted(participant: string, round: number, exampleCount: number, updateHash: string, from: string) {
  const signed = signedUpdate(participantIdentity(participant), {
    federation: 'fed',
    round,
    globalAdapterHash: from,
    exampleCount,
  });
  return { participant, exampleCount, updateHash, ...signed };
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-roundlog-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const isRoundError = (code: RoundLogErrorCode, text?: RegExp) => (err: unknown) =>
  err instanceof RoundLogError && err.code === code && (text === undefined || text.test(err.message));

function logOptions(overrides: Partial<RoundLogOptions> = {}): RoundLogOptions {
  let clock = Date.parse('2026-05-01T12:00:00.000Z');
  return {
    federation: 'fed',
    coordinatorSecretKey: coordinator.secretKey,
    now: () => new Date((clock += 1000)),
    ...overrides,
  };
}

/** config, three enrolments, round 1 open and closed with fedit. */
async function writeFederation(path: string): Promise<void> {
  const log = await RoundLog.open(path, logOptions());
  await log.append({ kind: 'config', body: { settings: { rank: 8 }, globalAdapter: hashOf('0') } });
  for (const participant of ['p1', 'p2', 'p3']) {
    await log.append({
      kind: 'enrol',
      body: { participant, publicKey: publicKeyHex(participantIdentity(participant)) },
    });
  }
  const selection = {
    seed: 'r1',
    fraction: '1',
    minimum: 1,
    selected: selectParticipants('r1', log.state.eligibleParticipants(), 1, 1),
  };
  await log.append({
    kind: 'round-open',
    body: {
      rule: { name: 'fedit', config: {} },
      selection,
      globalAdapter: hashOf('0'),
      deadline: '2026-05-02T00:00:00.000Z',
    },
  });
  await log.append({
    kind: 'round-closed',
    body: {
      rule: { name: 'fedit', config: {} },
      selection,
      updates: [
        counted('p1', 1, 10, hashOf('1'), hashOf('0')),
        counted('p3', 1, 30, hashOf('3'), hashOf('0')),
      ],
      globalAdapterIn: hashOf('0'),
      globalAdapterOut: hashOf('a'),
      dropped: [{ participant: 'p2', reason: 'late' }],
      metrics: { examples: 40 },
    },
  });
  await log.close();
}

test('appends chained, signed, canonical lines that verify', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    t.is(lines.pop(), '');
    t.is(lines.length, 6);
    const { records, torn } = await readRoundLog(path);
    t.is(torn, undefined);
    t.deepEqual(
      lines,
      records.map((r) => canonicalJson(r)),
    );
    t.deepEqual(
      records.map((r) => r.seq),
      [0, 1, 2, 3, 4, 5],
    );
    t.deepEqual(
      records.map((r) => r.round),
      [0, 0, 0, 0, 1, 1],
    );
    t.is(records[0].prevHash, ZERO_HASH);
    for (let i = 1; i < records.length; i++) t.is(records[i].prevHash, records[i - 1].hash);
    const report = verifyRoundLog(records, {
      coordinatorPublicKey: coordinator.publicKey,
      federation: 'fed',
    });
    t.true(report.ok, JSON.stringify(report.problems));
    t.deepEqual(
      report.rounds.map((r) => [r.round, r.status, r.participants]),
      [[1, 'closed', ['p1', 'p3']]],
    );
  });
});

test('a reopened log continues the chain and knows its state', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const log = await RoundLog.open(path, logOptions({ now: () => new Date('2026-06-01T00:00:00.000Z') }));
    t.is(log.repairedTail, undefined);
    t.is(log.state.nextSeq, 6);
    t.is(log.state.lastRound, 1);
    t.is(log.state.openRound, undefined);
    t.is(log.state.globalAdapter, hashOf('a'));
    t.deepEqual(log.state.eligibleParticipants(), ['p1', 'p2', 'p3']);
    t.true(log.state.hasEnvelope(counted('p1', 1, 10, hashOf('1'), hashOf('0')).envelopeDigest));
    t.false(log.state.hasEnvelope(counted('p2', 1, 10, hashOf('1'), hashOf('0')).envelopeDigest));
    const head = log.state.head;
    t.is(head, log.last!.hash);
    const revoke = await log.append({
      kind: 'revoke',
      body: { participant: 'p2', reason: 'left the federation' },
    });
    t.is(revoke.seq, 6);
    t.is(revoke.round, 1);
    t.is(revoke.prevHash, head);
    t.is(log.state.head, revoke.hash);
    t.deepEqual(log.state.eligibleParticipants(), ['p1', 'p3']);
    await log.close();
    const { records } = await readRoundLog(path);
    t.is(records.length, 7);
    t.true(verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey }).ok);
  });
});

test('refuses to append a record that would not verify, and writes nothing', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const before = await readFile(path);
    const log = await RoundLog.open(path, logOptions());
    const selection = {
      seed: 'r2',
      fraction: '0.5',
      minimum: 1,
      selected: selectParticipants('r2', ['p1', 'p2', 'p3'], 0.5, 1),
    };
    const outsider = ['p1', 'p2', 'p3'].find((p) => !selection.selected.includes(p))!;
    await log.append({
      kind: 'round-open',
      body: {
        rule: { name: 'fedit', config: {} },
        selection,
        globalAdapter: hashOf('a'),
        deadline: '2026-05-03T00:00:00.000Z',
      },
    });
    const size = (await readFile(path)).length;
    const err = await t.throwsAsync(
      log.append({
        kind: 'round-closed',
        body: {
          rule: { name: 'fedit', config: {} },
          selection,
          updates: [counted(outsider, 2, 5, hashOf('8'), hashOf('a'))],
          globalAdapterIn: hashOf('a'),
          globalAdapterOut: hashOf('b'),
          dropped: [],
          metrics: {},
        },
      }),
    );
    t.true(
      isRoundError(
        'ROUND_LOG_REJECTED',
        new RegExp(
          `the envelope of ${outsider} breaks admission rule UPDATE_NOT_SELECTED: this participant was not selected for round 2 \\[NOT_SELECTED\\]`,
        ),
      )(err),
    );
    t.is((await readFile(path)).length, size);
    // A round that is not open cannot be aborted either; the log goes on after a refusal.
    await t.throwsAsync(log.append({ kind: 'round-aborted', round: 7, body: { reason: 'x', dropped: [] } }), {
      message: /aborts round 7, which is not open/,
    });
    const aborted = await log.append({
      kind: 'round-aborted',
      body: { reason: 'quorum not reached', dropped: [] },
    });
    t.is(aborted.round, 2);
    await log.close();
    const { records } = await readRoundLog(path);
    t.true(verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey }).ok);
    t.true((await readFile(path)).subarray(0, before.length).equals(before));
  });
});

test('concurrent appends are serialised', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    const log = await RoundLog.open(path, logOptions());
    await log.append({ kind: 'config', body: { settings: {}, globalAdapter: hashOf('0') } });
    const appended = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        log.append({ kind: 'enrol', body: { participant: `p${i}`, publicKey: `k-p${i}` } }),
      ),
    );
    t.deepEqual(
      appended.map((r) => r.seq),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    // One failing append in the middle does not disturb the others.
    const results = await Promise.allSettled([
      log.append({ kind: 'enrol', body: { participant: 'q1', publicKey: 'k-q1' } }),
      log.append({ kind: 'enrol', body: { participant: 'p3', publicKey: 'k-p3' } }),
      log.append({ kind: 'enrol', body: { participant: 'q2', publicKey: 'k-q2' } }),
    ]);
    t.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    await log.close();
    const { records } = await readRoundLog(path);
    t.is(records.length, 23);
    t.true(verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey }).ok);
  });
});

test('record times never go backwards, even when the clock does', async (t) => {
  await withTempDir(async (dir) => {
    const times = ['2026-05-01T12:00:00.000Z', '2026-05-01T11:00:00.000Z'];
    const log = await RoundLog.open(
      join(dir, 'rounds.jsonl'),
      logOptions({ now: () => new Date(times.shift()!) }),
    );
    await log.append({ kind: 'config', body: { settings: {}, globalAdapter: hashOf('0') } });
    const second = await log.append({ kind: 'enrol', body: { participant: 'p', publicKey: 'k' } });
    t.is(second.time, '2026-05-01T12:00:00.000Z');
    await log.close();
  });
});

test('a torn last line (an interrupted append) is reported, and repair truncates exactly it', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const intact = await readFile(path);
    const lastStart = intact.subarray(0, intact.length - 1).lastIndexOf(0x0a) + 1;
    const lastLine = intact.subarray(lastStart);
    // Cut the last line anywhere: after one byte, mid-JSON, just before its newline.
    for (const cut of [1, 17, Math.floor(lastLine.length / 2), lastLine.length - 2, lastLine.length - 1]) {
      await writeFile(path, intact.subarray(0, lastStart + cut));
      const { records, torn } = await readRoundLog(path);
      t.is(records.length, 5, `cut at ${cut}`);
      t.deepEqual(torn, {
        line: 6,
        offset: lastStart,
        bytes: cut,
        reason: `the last line has no newline: an append was interrupted (${cut} bytes written)`,
      });
      t.true(verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey }).ok);
      t.deepEqual(await repairRoundLog(path), torn);
      t.true((await readFile(path)).equals(intact.subarray(0, lastStart)));
      t.is(await repairRoundLog(path), undefined);
    }
  });
});

test('a last line whose data never reached the disk (NUL bytes) is torn too', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const intact = await readFile(path);
    await appendFile(path, Buffer.concat([Buffer.alloc(300), Buffer.from('}\n')]));
    const { records, torn } = await readRoundLog(path);
    t.is(records.length, 6);
    t.is(torn?.offset, intact.length);
    t.regex(torn!.reason, /NUL bytes/);
    await repairRoundLog(path);
    t.true((await readFile(path)).equals(intact));
  });
});

test('RoundLog.open repairs a torn tail and appends after it; with repair off it refuses', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const intact = await readFile(path);
    await appendFile(path, '{"body":{"participant":"p4","publicK');
    await t.throwsAsync(RoundLog.open(path, logOptions({ repair: false })), { message: /line 7 is torn/ });
    const log = await RoundLog.open(path, logOptions());
    t.is(log.repairedTail?.line, 7);
    t.true((await readFile(path)).equals(intact));
    await log.append({ kind: 'enrol', body: { participant: 'p4', publicKey: 'key-p4' } });
    await log.close();
    const { records, torn } = await readRoundLog(path);
    t.is(torn, undefined);
    t.is(records.length, 7);
    t.true(verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey }).ok);
  });
});

test('a damaged line before the last is corruption: reported with its line, never repaired', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const intact = await readFile(path, 'utf8');
    const lines = intact.split('\n');
    const damages: [string, (line: string) => string, RegExp][] = [
      ['truncated', (l) => l.slice(0, 40), /line 3 \(byte \d+\) is not valid JSON/],
      ['garbage', () => 'hello', /line 3 \(byte \d+\) is not valid JSON/],
      [
        're-formatted',
        (l) => JSON.stringify(JSON.parse(l), null, 1).replace(/\n/g, ''),
        /line 3 .* is not in canonical form/,
      ],
      [
        'missing field',
        (l) => JSON.stringify({ ...JSON.parse(l), seq: undefined }),
        /line 3 .* is not a round record: .*seq is not a non-negative integer/,
      ],
      ['emptied', () => '', /line 3 .* is not valid JSON/],
    ];
    for (const [what, damage, message] of damages) {
      const damaged = [...lines];
      damaged[2] = damage(lines[2]);
      await writeFile(path, damaged.join('\n'));
      const expectCorrupt = (err: unknown) =>
        t.true(isRoundError('ROUND_LOG_CORRUPT', message)(err), `${what}: ${String(err)}`);
      expectCorrupt(await t.throwsAsync(readRoundLog(path)));
      expectCorrupt(await t.throwsAsync(repairRoundLog(path)));
      expectCorrupt(await t.throwsAsync(RoundLog.open(path, logOptions())));
      t.is(await readFile(path, 'utf8'), damaged.join('\n'), `${what}: the file is left as it was`);
    }
    // Invalid UTF-8 in a middle line.
    const bytes = Buffer.from(intact);
    bytes[bytes.indexOf('"p2"') + 1] = 0xff;
    await writeFile(path, bytes);
    await t.throwsAsync(readRoundLog(path), { message: /line 3 .* is not valid UTF-8/ });
  });
});

test('a complete last line that does not parse is damage, not a torn write', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    await appendFile(path, '{"seq":6,\n');
    await t.throwsAsync(readRoundLog(path), { message: /line 7 .* is not valid JSON/ });
    await t.throwsAsync(repairRoundLog(path));
  });
});

test('an edited record that still parses is caught by verification, and the log is not appended to', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"exampleCount":30', '"exampleCount":90'));
    const { records } = await readRoundLog(path);
    const report = verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey });
    t.is(report.firstFailure?.code, 'RECORD_HASH');
    t.is(report.firstFailure?.seq, 5);
    await t.throwsAsync(RoundLog.open(path, logOptions()), {
      message: /record 5 \(round-closed, round 1\): its content hashes to/,
    });
  });
});

test('refuses a log of another federation or signed by another key', async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'rounds.jsonl');
    await writeFederation(path);
    const federation = await t.throwsAsync(RoundLog.open(path, logOptions({ federation: 'other' })));
    t.true(isRoundError('ROUND_LOG_FEDERATION', /belongs to federation "fed", not "other"/)(federation));
    const key = await t.throwsAsync(
      RoundLog.open(path, logOptions({ coordinatorSecretKey: other.secretKey })),
    );
    t.true(isRoundError('ROUND_LOG_KEY', /not signed by the coordinator key given/)(key));
  });
});

test('a new log must start with a config record naming the initial adapter', async (t) => {
  await withTempDir(async (dir) => {
    const log = await RoundLog.open(join(dir, 'rounds.jsonl'), logOptions());
    await t.throwsAsync(log.append({ kind: 'enrol', body: { participant: 'p', publicKey: 'k' } }), {
      message:
        /the first record must be a config record naming the initial global adapter \[FIRST_NOT_CONFIG\]/,
    });
    await log.close();
    await t.throwsAsync(log.append({ kind: 'config', body: { settings: {}, globalAdapter: hashOf('0') } }), {
      message: /the log was closed/,
    });
  });
});

test('reading a log that does not exist says so', async (t) => {
  await t.throwsAsync(readRoundLog(join(tmpdir(), 'fedit-no-such-dir', 'rounds.jsonl')), {
    message: /no such round log/,
  });
});
