// `fedit audit` as an auditor runs it, on a real three-round federation (a coordinator on loopback
// and two participants speaking the protocol): the honest folder verifies (exit 0, a table, and
// JSON with --json), and each way of tampering with a copy of it (an edited byte, a removed or
// moved line, a broken line, a deleted or altered blob, another coordinator's key) exits 1 with
// the round and the reason named, in the table and in the JSON alike. It needs @fedit/shared alone:
// a run of it never loads the coordinator, socket.io, lowdb or the training engine.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  federationPaths,
  generateIdentity,
  toBase64url,
  type AuditReport,
  type RoundRecord,
  type VerificationProblemCode,
} from '@fedit/shared';
import { fedit, repoRoot, type Run } from './helpers/cli.ts';
import { tempDir } from './helpers/federation.ts';
import { finishedFederationForFile, type FinishedFederation } from './helpers/finished-federation.ts';

type Federation = FinishedFederation;
const realFederation = finishedFederationForFile();

/** A copy of the federation folder to tamper with. */
function copyOf(t: ExecutionContext, fed: Federation): string {
  const dir = join(tempDir(t, 'fedit-audit-'), 'copy');
  cpSync(fed.root, dir, { recursive: true });
  return dir;
}

const logPath = (dir: string) => federationPaths(dir).log;
const logLines = (dir: string) => readFileSync(logPath(dir), 'utf8').split('\n').slice(0, -1);
const writeLines = (dir: string, lines: string[]) =>
  writeFileSync(logPath(dir), lines.map((l) => l + '\n').join(''));
const blobFile = (dir: string, hash: string) =>
  join(federationPaths(dir).blobs, hash.slice(7, 9), `${hash.slice(7)}.safetensors`);
const indexOf = (fed: Federation, kind: RoundRecord['kind'], round: number) =>
  fed.records.findIndex((r) => r.kind === kind && r.round === round);
const closedBody = (fed: Federation, round: number) => {
  const record = fed.records[indexOf(fed, 'round-closed', round)];
  if (record.kind !== 'round-closed') throw new Error(`round ${round} did not close`);
  return record.body;
};

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs `fedit audit` on `dir` twice, as a table and as JSON, and checks both fail alike. */
async function auditFails(
  t: ExecutionContext,
  dir: string,
  expected: { round: number | undefined; code: VerificationProblemCode; message: RegExp },
  ...extra: string[]
): Promise<AuditReport> {
  const [table, json]: Run[] = await Promise.all([
    fedit('audit', dir, ...extra),
    fedit('audit', dir, '--json', ...extra),
  ]);
  t.is(table.code, 1, table.stdout + table.stderr);
  t.is(json.code, 1, json.stderr);
  t.is(json.stderr, '');
  const report = JSON.parse(json.stdout) as AuditReport;
  t.false(report.ok);
  t.is(report.firstFailure?.code, expected.code, JSON.stringify(report.firstFailure));
  t.is(report.firstFailure?.round, expected.round);
  t.regex(report.firstFailure!.message, expected.message);
  t.regex(table.stdout, new RegExp(`^verdict: FAILED — ${escape(report.firstFailure!.message)}$`, 'm'));
  if (expected.round !== undefined) {
    const row = table.stdout.split('\n').find((l) => l.startsWith(String(expected.round).padStart(5) + ' '));
    t.regex(row ?? '', new RegExp(`FAILED: .*${expected.code}`), `the table row of round ${expected.round}`);
    t.false(report.rounds.find((r) => r.round === expected.round)!.ok);
  }
  return report;
}

test('an honest federation verifies: a table of three verified rounds, and the same report as JSON', async (t) => {
  const fed = await realFederation();
  const [table, json] = await Promise.all([fedit('audit', fed.root), fedit('audit', fed.root, '--json')]);
  t.is(table.code, 0, table.stderr);
  t.is(table.stderr, '');
  const rows = table.stdout.split('\n').filter((l) => /^\s+\d+ {2}/.test(l));
  t.is(rows.length, 3);
  for (const row of rows) t.regex(row, /closed\s+fedit\s+2\s+2\s+verified\s+ok$/);
  t.regex(table.stdout, /^verdict: the log verifies/m);
  t.regex(table.stdout, /signatures checked against keys\/coordinator\.pub\.json in the audited folder/);
  t.regex(table.stdout, /pass --key with the key you got out of band/);
  t.is(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as AuditReport;
  t.true(report.ok);
  t.is(report.records, fed.records.length);
  t.is(report.head, fed.records.at(-1)!.hash);
  t.deepEqual(
    report.rounds.map((r) => [r.round, r.status, r.aggregation, r.participants.length, r.ok]),
    [1, 2, 3].map((round) => [round, 'closed', 'verified', 2, true]),
  );
  t.false(report.keyIndependent);
});

/** Runs `fedit ...args` with every module it loads recorded (test/fixtures/record-modules.mjs). */
async function loadedModules(t: ExecutionContext, ...args: string[]): Promise<Run & { modules: string[] }> {
  const file = join(tempDir(t, 'fedit-modules-'), 'modules.txt');
  writeFileSync(file, '');
  const entry = ['--conditions=source', '--import', 'tsx', '--import', './test/fixtures/record-modules.mjs'];
  const run = await new Promise<Run>((done, fail) => {
    execFile(
      process.execPath,
      [...entry, 'client-app/src/cli/fedit.ts', ...args],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, FEDIT_RECORD_MODULES: file },
      },
      (error, stdout, stderr) =>
        error && typeof error.code !== 'number'
          ? fail(error)
          : done({ code: error ? (error.code as number) : 0, stdout, stderr }),
    );
  });
  return { ...run, modules: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
}

const HEAVY =
  /\/node_modules\/(onnxruntime-node|socket\.io|engine\.io|lowdb)\/|\/(coordinator|kernels)\/src\//;
const heavyPackages = (modules: string[]) =>
  [
    ...new Set(
      modules.flatMap((m) => {
        const match = HEAVY.exec(m);
        return match ? [match[1] ?? `${match[2]}/src`] : [];
      }),
    ),
  ].sort();

test('`fedit audit` loads @fedit/shared alone: never onnxruntime-node, socket.io, lowdb, the coordinator or the engine', async (t) => {
  const fed = await realFederation();
  const audit = await loadedModules(t, 'audit', fed.root);
  t.is(audit.code, 0, audit.stderr);
  t.regex(audit.stdout, /^verdict: the log verifies/m);
  t.true(
    audit.modules.some((m) => m.endsWith('/shared/src/audit/audit.ts')),
    'the recorder saw the audit load',
  );
  t.deepEqual(heavyPackages(audit.modules), []);

  // The recorder does see them where a command loads them: listing participants opens the folder
  // through the coordinator package, which loads socket.io and lowdb but never the engine (the
  // coordinator does not depend on @fedit/kernels)...
  const coordinator = await loadedModules(t, 'coordinator', 'participants', fed.root);
  t.is(coordinator.code, 0, coordinator.stderr);
  t.deepEqual(heavyPackages(coordinator.modules), ['coordinator/src', 'engine.io', 'lowdb', 'socket.io']);
  // ...and `generate` loads the engine and its runtime before it finds no model in the folder.
  const engine = await loadedModules(t, 'generate', '--model', fed.root, '--prompt', 'hello');
  t.not(engine.code, 0);
  t.deepEqual(heavyPackages(engine.modules), ['kernels/src', 'onnxruntime-node']);
});

test('--key takes the key as an invite, a coordinator.pub.json, base64url or hex', async (t) => {
  const fed = await realFederation();
  const pub = join(fed.root, 'keys', 'coordinator.pub.json');
  const hex = Buffer.from(fed.publicKey).toString('hex');
  const forms: [string, RegExp][] = [
    [fed.invite, /--key \(invite\)/],
    [pub, /--key .*coordinator\.pub\.json/],
    [toBase64url(fed.publicKey), /--key \(base64url\)/],
    [hex, /--key \(hex\)/],
  ];
  const runs = await Promise.all(forms.map(([key]) => fedit('audit', fed.root, '--key', key)));
  for (const [i, run] of runs.entries()) {
    t.is(run.code, 0, `${forms[i][0]}: ${run.stdout}${run.stderr}`);
    t.regex(run.stdout, forms[i][1]);
    t.regex(run.stdout, /^verdict: the log verifies/m);
    t.notRegex(run.stdout, /out of band/, 'no warning when the key came from outside the folder');
  }
  const bad = await fedit('audit', fed.root, '--key', 'not-a-key');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^fedit: --key "not-a-key" is not a key: .*64 hex digits or 43 base64url.*invite/);
});

test('an empty --key is refused, not replaced by the key in the audited folder', async (t) => {
  const fed = await realFederation();
  for (const key of ['', '  ']) {
    const run = await fedit('audit', fed.root, '--key', key, '--json');
    t.is(run.code, 1, run.stdout);
    t.is(run.stdout, '', 'no report');
    t.regex(run.stderr, /^fedit: --key is empty: give the coordinator's public signing key/);
  }
});

test("another coordinator's key fails every record's signature, in every round", async (t) => {
  const fed = await realFederation();
  const other = generateIdentity();
  const report = await auditFails(
    t,
    fed.root,
    {
      round: undefined,
      code: 'RECORD_SIGNATURE',
      message: /^record 0 \(config\): its signature is not the coordinator's/,
    },
    '--key',
    Buffer.from(other.sign.publicKey).toString('hex'),
  );
  t.is(report.problems.length, fed.records.length);
  t.true(report.rounds.every((r) => !r.ok && r.problems.every((p) => p.code === 'RECORD_SIGNATURE')));
});

test('an edited byte in a round record names the round: changed after it was signed', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const lines = logLines(dir);
  const at = indexOf(fed, 'round-closed', 2);
  const count = closedBody(fed, 2).updates[0].exampleCount;
  lines[at] = lines[at].replace(`"exampleCount":${count}`, `"exampleCount":${count + 1}`);
  writeLines(dir, lines);
  await auditFails(t, dir, {
    round: 2,
    code: 'RECORD_HASH',
    message: new RegExp(
      `^record ${at} \\(round-closed, round 2\\): its content hashes to .* it was changed after it was signed`,
    ),
  });
});

test('a removed record line names the round of the record after it: the chain is broken', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const at = indexOf(fed, 'round-open', 2);
  writeLines(
    dir,
    logLines(dir).filter((_, i) => i !== at),
  );
  await auditFails(t, dir, {
    round: 2,
    code: 'SEQ_GAP',
    message: new RegExp(
      `^record ${at + 1} \\(round-closed, round 2\\): has seq ${at + 1} where ${at} was expected`,
    ),
  });
});

test('two reordered lines are named at the first of them', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const lines = logLines(dir);
  const at = indexOf(fed, 'round-closed', 1);
  [lines[at], lines[at + 1]] = [lines[at + 1], lines[at]];
  writeLines(dir, lines);
  await auditFails(t, dir, {
    round: 2,
    code: 'SEQ_GAP',
    message: new RegExp(
      `^record ${at + 1} \\(round-open, round 2\\): has seq ${at + 1} where ${at} was expected`,
    ),
  });
});

test('a line that is no longer JSON is reported with its line and round, as a table and as JSON', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const lines = logLines(dir);
  const at = indexOf(fed, 'round-closed', 3);
  lines[at] = lines[at].replace('"updates":[', '"updates":[[');
  writeLines(dir, lines);
  await auditFails(t, dir, {
    round: 3,
    code: 'LINE_DAMAGED',
    message: new RegExp(
      `^line ${at + 1} of the log \\(record ${at}, round-closed, round 3 by its text\\): is not valid JSON`,
    ),
  });
});

test("a deleted counted update's blob fails its round, naming the hash", async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const update = closedBody(fed, 2).updates[1];
  rmSync(blobFile(dir, update.updateHash));
  const report = await auditFails(t, dir, {
    round: 2,
    code: 'BLOB_MISSING',
    message: new RegExp(
      `round 2\\): the update of ${update.participant} ${update.updateHash} is not in the blob store`,
    ),
  });
  t.deepEqual(report.rounds.find((r) => r.round === 2)?.missingBlobs, [update.updateHash]);
  t.deepEqual(
    report.rounds.map((r) => r.ok),
    [true, false, true],
  );
});

test('a copy without blobs/ fails: nothing can be recomputed', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  rmSync(federationPaths(dir).blobs, { recursive: true });
  const report = await auditFails(t, dir, {
    round: undefined,
    code: 'BLOB_MISSING',
    message: /^record 0 \(config\): the global adapter sha256:\w+ is not in the blob store/,
  });
  t.true(report.rounds.every((r) => !r.ok && r.aggregation === 'failed'));
  t.deepEqual(readdirSync(dir).includes('blobs'), false, 'the audit wrote nothing');
});

test('an altered byte in a stored update fails its round: the blob does not match its name', async (t) => {
  const fed = await realFederation();
  const dir = copyOf(t, fed);
  const update = closedBody(fed, 1).updates[0];
  const path = blobFile(dir, update.updateHash);
  const bytes = readFileSync(path);
  bytes[bytes.length - 3] ^= 0x01; // inside the last tensor's data
  writeFileSync(path, bytes);
  await auditFails(t, dir, {
    round: 1,
    code: 'BLOB_CORRUPT',
    message: new RegExp(
      `round 1\\): the update of ${update.participant} ${update.updateHash} cannot be read from the blob store: .*does not match its name`,
    ),
  });
});

test('every counted update in the log carries its participant-signed envelope', async (t) => {
  const fed = await realFederation();
  const enrolled = new Map<string, string>();
  for (const r of fed.records) if (r.kind === 'enrol') enrolled.set(r.body.participant, r.body.publicKey);
  for (const round of [1, 2, 3]) {
    const body = closedBody(fed, round);
    for (const update of body.updates) {
      t.is(enrolled.get(update.participant), update.envelope.participant);
      t.is(update.envelope.round, round);
      t.is(update.envelope.exampleCount, update.exampleCount);
      t.is<string, string>(update.envelope.globalAdapterHash, body.globalAdapterIn);
      t.regex(update.envelope.signature, /^[0-9a-f]{128}$/);
    }
  }
});
