// The end of the log (issue 12: "the audit cannot detect a removed tail of the log"), on a real
// three-round federation: removing the last records, cutting the last line at a byte or deleting
// the final newline all still pass `fedit audit` alone (an unfinished federation's log that is
// merely shorter looks the same; only the missing finished record hints at it), and every one of
// them fails `fedit audit --head` with a signed tree head taken before the cut (or the {size, root}
// an earlier audit printed). A head that the
// coordinator did not sign, of another federation, or over other records fails too.

import test, { type ExecutionContext } from 'ava';
import { cpSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  auditFederation,
  federationPaths,
  formatAudit,
  recordTree,
  rootString,
  signTreeHead,
  type AuditReport,
  type RoundRecord,
  type SignedTreeHead,
  type VerificationProblemCode,
} from '@fedit/shared';
import { fedit } from './helpers/cli.ts';
import { tempDir } from './helpers/federation.ts';
import { finishedFederationForFile, type FinishedFederation } from './helpers/finished-federation.ts';

type Federation = FinishedFederation;
const realFederation = finishedFederationForFile();

/** The head a participant would hold: the coordinator's signature over the first `size` records. */
function headOf(
  fed: Federation,
  size: number,
  records: readonly RoundRecord[] = fed.records,
): SignedTreeHead {
  const root = rootString(recordTree(records.slice(0, size)).root());
  return signTreeHead(
    { federation: records[0].federation, size, root, time: '2026-12-07T21:00:00.000Z' },
    fed.secretKey,
  );
}

function copyOf(t: ExecutionContext, fed: Federation): { dir: string; log: string; headFile: string } {
  const base = tempDir(t, 'fedit-audit-head-');
  const dir = join(base, 'copy');
  cpSync(fed.root, dir, { recursive: true });
  const headFile = join(base, 'head.json');
  writeFileSync(headFile, JSON.stringify(headOf(fed, fed.records.length)));
  return { dir, log: federationPaths(dir).log, headFile };
}

/**
 * The audit as `fedit audit DIR [--head HEAD]` runs it (auditFederation, then formatAudit for the
 * table), in this process: the CLI's own wiring is exercised once, in the first test, since every
 * spawn costs seconds of CPU.
 */
async function audit(
  dir: string,
  head?: string,
): Promise<{ code: number; report: AuditReport; table: string }> {
  const report = await auditFederation(dir, { head });
  return { code: report.ok ? 0 : 1, report, table: formatAudit(report) };
}

async function failsWithHead(
  t: ExecutionContext,
  dir: string,
  headFile: string,
  code: VerificationProblemCode,
  message: RegExp,
) {
  const { code: exit, report, table } = await audit(dir, headFile);
  t.is(exit, 1);
  t.false(report.ok);
  t.false(report.pinnedHead!.ok);
  t.is(report.firstFailure?.code, code, JSON.stringify(report.firstFailure));
  t.regex(report.firstFailure!.message, message);
  t.regex(table, /the log does NOT extend it/);
}

test('an honest finished log ends in its finished record, prints its tree head and extends a pinned head', async (t) => {
  const fed = await realFederation();
  const last = fed.records.at(-1)!;
  t.is(last.kind, 'finished');
  t.like(last.body, { rounds: 3 });
  const { dir, headFile } = copyOf(t, fed);
  const { code, report, table } = await audit(dir, headFile);
  t.is(code, 0, table);
  t.true(report.ok);
  t.deepEqual(report.tree, { size: fed.records.length, root: headOf(fed, fed.records.length).root });
  t.deepEqual(report.finished, { seq: last.seq, rounds: 3 });
  t.true(report.pinnedHead!.ok);
  t.regex(table, new RegExp(`tree head: size ${fed.records.length}, root ${report.tree.root}`));
  t.regex(table, /the federation finished after 3 rounds/);
  // An older head (a participant's from round 2) is a prefix of the log: it verifies too.
  const older = headOf(fed, fed.records.findIndex((r) => r.kind === 'round-closed' && r.round === 2) + 1);
  t.is((await audit(dir, JSON.stringify(older))).code, 0);
  // The tree an audit printed pins the log as well, vouched for by the auditor alone.
  t.is((await audit(dir, JSON.stringify(report.tree))).code, 0);
});

test('removing the last records passes the audit alone, and fails it with a pinned head', async (t) => {
  const fed = await realFederation();
  for (const removed of [1, 3]) {
    const { dir, log, headFile } = copyOf(t, fed);
    const lines = readFileSync(log, 'utf8').split('\n').slice(0, -1);
    writeFileSync(
      log,
      lines
        .slice(0, -removed)
        .map((l) => l + '\n')
        .join(''),
    );
    const alone = await audit(dir);
    t.is(alone.code, 0, `without --head, ${removed} records removed go unseen`);
    t.is(alone.report.finished, undefined);
    t.regex(alone.table, /no finished record: the federation is still running, or records were cut/);
    const size = fed.records.length - removed;
    await failsWithHead(
      t,
      dir,
      headFile,
      'HEAD_BEYOND_LOG',
      new RegExp(
        `^the log holds ${size} records, but the pinned tree head .* covers ${fed.records.length}: records ${size} to ${fed.records.length - 1} were removed`,
      ),
    );
    const pinnedTree = JSON.stringify({
      size: fed.records.length,
      root: headOf(fed, fed.records.length).root,
    });
    await failsWithHead(t, dir, pinnedTree, 'HEAD_BEYOND_LOG', new RegExp(`^the log holds ${size} records`));
  }
});

test('cutting the last line at any byte, or deleting the final newline, fails with a pinned head', async (t) => {
  const fed = await realFederation();
  const { log: original } = { log: federationPaths(fed.root).log };
  const length = statSync(original).size;
  const lastLine = JSON.stringify(fed.records.at(-1)).length + 1;
  for (const cut of [1, 2, Math.floor(lastLine / 2), lastLine - 1]) {
    const { dir, log, headFile } = copyOf(t, fed);
    truncateSync(log, length - cut);
    const alone = await audit(dir);
    t.is(alone.code, 0, `without --head, ${cut} bytes cut go unseen (a torn line)`);
    await failsWithHead(
      t,
      dir,
      headFile,
      'HEAD_BEYOND_LOG',
      new RegExp(`^the log holds ${fed.records.length - 1} records`),
    );
  }
});

test('a head over other records, signed by another key, or of another federation fails naming it', async (t) => {
  const fed = await realFederation();
  const { dir, headFile } = copyOf(t, fed);
  const size = fed.records.length;
  // A forked log: the coordinator signed a head over a different record 4.
  const forked = fed.records.map((r, i) => (i === 4 ? { ...r, hash: `sha256:${'ab'.repeat(32)}` } : r));
  writeFileSync(headFile, JSON.stringify(headOf(fed, size, forked)));
  await failsWithHead(
    t,
    dir,
    headFile,
    'HEAD_ROOT_MISMATCH',
    new RegExp(
      `^the log's first ${size} records have root sha256:[0-9a-f]{64}, not that of the pinned tree head .*: records the coordinator signed into that head were rewritten`,
    ),
  );

  const impostor = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
  const honest = headOf(fed, size);
  const { signature: _, ...unsigned } = honest;
  writeFileSync(headFile, JSON.stringify(signTreeHead(unsigned, impostor.secretKey)));
  await failsWithHead(
    t,
    dir,
    headFile,
    'HEAD_SIGNATURE',
    /is not signed by the coordinator key the audit uses/,
  );

  writeFileSync(
    headFile,
    JSON.stringify(signTreeHead({ ...unsigned, federation: 'another-study' }, fed.secretKey)),
  );
  await failsWithHead(t, dir, headFile, 'HEAD_SIGNATURE', /is federation another-study's, not this log's/);

  writeFileSync(headFile, JSON.stringify({ ...honest, size: size - 1 }));
  await failsWithHead(t, dir, headFile, 'HEAD_SIGNATURE', /is not signed by the coordinator key/);
});

test('a --head that is not a signed tree head is refused naming the field', async (t) => {
  const fed = await realFederation();
  const { dir } = copyOf(t, fed);
  const { signature: _, ...unsigned } = headOf(fed, 3);
  const run = await fedit('audit', dir, '--head', JSON.stringify(unsigned));
  t.not(run.code, 0);
  t.regex(run.stderr, /head\.signature/);
  const garbage = await fedit('audit', dir, '--head', 'no-such-file.json');
  t.not(garbage.code, 0);
  t.regex(garbage.stderr, /neither a signed tree head as JSON nor a file holding one/);
});
