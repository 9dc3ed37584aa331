// The signed `finished` record: written once, after the last round, with no round open, stating the
// rounds aggregated and the final adapter the log shows; no round opens after it. The log refuses
// to append one that breaks a rule (the verifier's codes in the message), and the audit's tree of a
// finished log is the RFC 6962 tree of its record hashes.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  readRoundLog,
  recordTree,
  RoundLog,
  RoundLogError,
  selectParticipants,
  verifyRoundLog,
  type RoundLogOptions,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
const hashOf = (c: string) => `sha256:${c.repeat(64)}`;

function logOptions(): RoundLogOptions {
  let clock = Date.parse('2026-05-01T12:00:00.000Z');
  return {
    federation: 'fed',
    coordinatorSecretKey: coordinator.secretKey,
    now: () => new Date((clock += 1000)),
  };
}

/** config, one enrolment, round 1 open (and, unless `open`, closed with one update). */
async function federation(path: string, { open = false } = {}): Promise<RoundLog> {
  const log = await RoundLog.open(path, logOptions());
  await log.append({ kind: 'config', body: { settings: {}, globalAdapter: hashOf('0') } });
  await log.append({
    kind: 'enrol',
    body: { participant: 'p1', publicKey: publicKeyHex(participantIdentity('p1')) },
  });
  const selection = {
    seed: 'r1',
    fraction: '1',
    minimum: 1,
    selected: selectParticipants('r1', ['p1'], 1, 1),
  };
  const rule = { name: 'fedit', config: {} };
  await log.append({
    kind: 'round-open',
    body: { rule, selection, globalAdapter: hashOf('0'), deadline: '2026-05-02T00:00:00.000Z' },
  });
  if (open) return log;
  const signed = signedUpdate(participantIdentity('p1'), {
    federation: 'fed',
    round: 1,
    globalAdapterHash: hashOf('0'),
    exampleCount: 10,
  });
  await log.append({
    kind: 'round-closed',
    body: {
      rule,
      selection,
      updates: [{ participant: 'p1', exampleCount: 10, updateHash: hashOf('1'), ...signed }],
      globalAdapterIn: hashOf('0'),
      globalAdapterOut: hashOf('a'),
      dropped: [],
      metrics: {},
    },
  });
  return log;
}

async function inTempDir(run: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fedit-finished-'));
  try {
    await run(join(dir, 'rounds.jsonl'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const refusedWith = (code: string, text: RegExp) => ({
  instanceOf: RoundLogError,
  message: (m: string) => m.includes(`[${code}]`) && text.test(m),
});

test('a finished record after the last round verifies, is kept in the state, and closes the tree', async (t) => {
  await inTempDir(async (path) => {
    const log = await federation(path);
    const record = await log.append({ kind: 'finished', body: { rounds: 1, globalAdapter: hashOf('a') } });
    t.is(record.round, 1);
    t.deepEqual(log.state.finished, { seq: 4, rounds: 1, globalAdapter: hashOf('a') });
    await log.close();
    const { records } = await readRoundLog(path);
    const report = verifyRoundLog(records, { coordinatorPublicKey: coordinator.publicKey });
    t.true(report.ok, JSON.stringify(report.firstFailure));
    t.is(recordTree(records).size, 5);
  });
});

test('a finished record that misstates the rounds or the adapter, comes twice, or while a round is open is refused', async (t) => {
  await inTempDir(async (path) => {
    const log = await federation(path);
    await t.throwsAsync(
      log.append({ kind: 'finished', body: { rounds: 2, globalAdapter: hashOf('a') } }),
      refusedWith('FINISHED_MISMATCH', /says 2 rounds were aggregated, but the log shows 1/),
    );
    await t.throwsAsync(
      log.append({ kind: 'finished', body: { rounds: 1, globalAdapter: hashOf('0') } }),
      refusedWith(
        'FINISHED_MISMATCH',
        /names the final adapter sha256:0{64}, but the log's global adapter is sha256:a{64}/,
      ),
    );
    await log.append({ kind: 'finished', body: { rounds: 1, globalAdapter: hashOf('a') } });
    await t.throwsAsync(
      log.append({ kind: 'finished', body: { rounds: 1, globalAdapter: hashOf('a') } }),
      refusedWith('AFTER_FINISHED', /finishes the federation a second time \(first at record 4\)/),
    );
    await t.throwsAsync(
      log.append({
        kind: 'round-open',
        body: {
          rule: { name: 'fedit', config: {} },
          selection: {
            seed: 'r2',
            fraction: '1',
            minimum: 1,
            selected: selectParticipants('r2', ['p1'], 1, 1),
          },
          globalAdapter: hashOf('a'),
          deadline: '2026-05-03T00:00:00.000Z',
        },
      }),
      refusedWith('AFTER_FINISHED', /opens round 2 after the federation finished \(record 4\)/),
    );
    await log.close();
  });
  await inTempDir(async (path) => {
    const log = await federation(path, { open: true });
    await t.throwsAsync(
      log.append({ kind: 'finished', body: { rounds: 0, globalAdapter: hashOf('0') } }),
      refusedWith('ROUND_ORDER', /finishes the federation while round 1 is open/),
    );
    await log.close();
  });
});
