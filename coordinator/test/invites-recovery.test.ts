// Invites survive crashes. An enrolment is two writes (the invite's "used" line, then the enrol
// record), so a kill -9 or a failed append between them leaves the invite used by a participant
// that is not enrolled: the same participant retrying with the same invite must finish its
// enrolment, and any other key must still be refused. And a torn last line of invites.jsonl (a
// crash mid-append) must be repaired by the next append, not glued to it into a damaged line that
// refuses every later enrolment.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  federationPaths,
  fingerprint,
  generateIdentity,
  parseInvite,
  publicIdentity,
} from '@fedit/shared';
import { createInvite, readInvites } from '../src/index.ts';
import { redeemInvite, tokenHash, withInvitesLock } from '../src/federation/invites.ts';
import { initTestFederation, logRecords, startTestFederation, tempDir } from './helpers/federation.ts';
import { Peer, type Ack } from './helpers/peer.ts';

const error = (ack: Ack) => (ack.ok ? undefined : ack.error);
const refuse = (code: string, message: string): never => {
  throw new Error(`${code}: ${message}`);
};
const invitesFile = (root: string) => join(root, 'invites.jsonl');
const enrolments = async (root: string) =>
  (await logRecords(root)).filter((r) => r.kind === 'enrol').map((r) => r.body.participant);

test('a participant whose invite was marked used before a crash enrols on retry; another key is still refused', async (t) => {
  const root = await initTestFederation(t);
  const token = parseInvite(createInvite(root, { url: 'http://127.0.0.1:1' })).token;
  const identity = generateIdentity();
  const id = fingerprint(publicIdentity(identity));
  // The state a kill -9 between the two writes leaves: the "used" line is on disk, the enrol
  // record and the index are not.
  redeemInvite(root, token, id, refuse);
  t.is(readInvites(root).get(tokenHash(token))?.usedBy, id);
  t.deepEqual(await enrolments(root), []);

  const fed = await startTestFederation(t, {}, root);
  const peers: Peer[] = [];
  t.teardown(() => peers.forEach((p) => p.close()));
  const connect = async (who = generateIdentity()) => {
    const peer = await Peer.connect(fed.target(), who);
    peers.push(peer);
    return peer;
  };

  const other = await connect();
  t.like(error(await other.enrol(token)), { code: 'INVITE_USED', field: 'payload.token' });
  const retry = await connect(identity);
  t.like(await retry.enrol(token, 'retried'), { ok: true, participantId: id });
  t.deepEqual(await enrolments(root), [id]);
  t.like(await (await connect(identity)).prove(), { ok: true, participantId: id });
  // The invite still belongs to the first participant, once: no second "used" line was written.
  t.is(readFileSync(invitesFile(root), 'utf8').match(/"type":"used"/g)?.length, 1);

  // A crash after the enrol record but before the index was saved: the index is rebuilt from the
  // log, and the same enrolment again is answered as already enrolled, writing nothing.
  await fed.coordinator.close();
  // (under ava, NODE_ENV=test, lowdb keeps the index in memory only: it is always rebuilt)
  rmSync(federationPaths(root).index, { force: true });
  await fed.restart();
  t.like(await (await connect(identity)).enrol(token), { ok: true, participantId: id });
  t.like(error(await (await connect()).enrol(token)), { code: 'INVITE_USED' });
  t.deepEqual(await enrolments(root), [id]);
});

test('the same key enrolling on two connections at once is enrolled once', async (t) => {
  const fed = await startTestFederation(t);
  const identity = generateIdentity();
  const token = fed.inviteToken();
  const [a, b] = await Promise.all([
    Peer.connect(fed.target(), identity),
    Peer.connect(fed.target(), identity),
  ]);
  t.teardown(() => [a, b].forEach((p) => p.close()));
  const acks = await Promise.all([a.enrol(token), b.enrol(token)]);
  t.true(acks.some((ack) => ack.ok));
  for (const ack of acks) if (!ack.ok) t.is(ack.error.code, 'ENROL_IN_PROGRESS');
  t.deepEqual(await enrolments(fed.root), [fingerprint(publicIdentity(identity))]);
});

for (const [what, fragment] of [
  // Not hex after the quote: a fragment that could begin a real line (1 token hash in 256 starts
  // with "ab") would be found again in the repaired file.
  ['an interrupted append', '{"type":"created","tokenHash":"zz'],
  ['NUL bytes where the data never reached the disk', '\0'.repeat(40) + '\n'],
] as const) {
  test(`a torn last line of invites.jsonl (${what}) is repaired by the next append`, async (t) => {
    const root = await initTestFederation(t);
    const first = parseInvite(createInvite(root, { url: 'http://127.0.0.1:1' })).token;
    appendFileSync(invitesFile(root), fragment);
    t.deepEqual([...readInvites(root).keys()], [tokenHash(first)], 'readers leave the torn line out');

    const fed = await startTestFederation(t, {}, root);
    const second = fed.inviteToken(); // appended after the fragment: it is truncated first
    const text = readFileSync(invitesFile(root), 'utf8');
    t.false(text.includes(fragment), 'the fragment is gone');
    t.deepEqual([...readInvites(root).keys()], [tokenHash(first), tokenHash(second)]);

    const peers = await Promise.all([Peer.connect(fed.target()), Peer.connect(fed.target())]);
    t.teardown(() => peers.forEach((p) => p.close()));
    t.like(await peers[0].enrol(first), { ok: true });
    // A torn "used" line (the coordinator killed while redeeming) is repaired the same way.
    appendFileSync(invitesFile(root), fragment);
    t.like(await peers[1].enrol(second), { ok: true });
    t.deepEqual(
      [...readInvites(root).values()].map((s) => s.usedBy),
      [peers[0].id, peers[1].id],
    );
    t.deepEqual(await enrolments(root), [peers[0].id, peers[1].id]);
  });
}

test('damage in the middle of invites.jsonl is refused with its line, not repaired', async (t) => {
  const root = await initTestFederation(t);
  createInvite(root, { url: 'http://127.0.0.1:1' });
  appendFileSync(invitesFile(root), '{"type":"created",\n');
  createInvite(root, { url: 'http://127.0.0.1:1' });
  t.throws(() => readInvites(root), { message: /invites\.jsonl:2: not valid JSON/ });
});

test('a malformed field of an invites.jsonl line is refused naming the file, line and field', async (t) => {
  const root = await initTestFederation(t);
  const token = parseInvite(createInvite(root, { url: 'http://127.0.0.1:1' })).token;
  const hash = tokenHash(token);
  const cases = [
    [
      { type: 'used', tokenHash: hash, by: 7, at: new Date().toISOString() },
      /^by must be a participant id, got 7$/,
    ],
    [{ type: 'used', tokenHash: hash, by: 'p' }, /^at must be a time .*, got nothing$/],
    [{ type: 'created', tokenHash: hash, createdAt: 'soon' }, /^createdAt must be a time .*, got "soon"$/],
    [
      { type: 'created', tokenHash: hash, createdAt: new Date().toISOString(), expiresAt: 'never' },
      /^expiresAt must be a time .*, got "never"$/,
    ],
    [
      { type: 'created', tokenHash: 5, createdAt: new Date().toISOString() },
      /^tokenHash must be a string, got 5$/,
    ],
    [
      { type: 'used', tokenHash: 'abc', by: 'p', at: new Date().toISOString() },
      /^tokenHash must be a token hash \(64 lowercase hex digits\), got "abc"$/,
    ],
    [{ type: 'revoked', tokenHash: hash }, /^type must be "created" or "used", got "revoked"$/],
    [[1, 2], /^not an invite line/],
  ] as const;
  const good = readFileSync(invitesFile(root), 'utf8');
  for (const [line, problem] of cases) {
    writeFileSync(invitesFile(root), `${good}${JSON.stringify(line)}\n`);
    const err = t.throws(() => readInvites(root), { instanceOf: FeditError });
    t.is(err?.code, 'INVITES_DAMAGED');
    const prefix = `${invitesFile(root)}:2: `;
    t.true(err!.message.startsWith(prefix), err!.message);
    t.regex(err!.message.slice(prefix.length), problem);
  }
  // A field a newer fedit adds is left out, as before.
  writeFileSync(
    invitesFile(root),
    `${good}${JSON.stringify({ type: 'used', tokenHash: hash, by: 'p', at: new Date().toISOString(), via: 'x' })}\n`,
  );
  t.like(readInvites(root).get(hash), { usedBy: 'p' });
});

/** The pid of a process that has exited. */
const deadPid = () =>
  spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();

test('an invites lock left by a dead process is taken over', async (t) => {
  const root = await initTestFederation(t);
  const lock = join(root, 'invites.lock');
  writeFileSync(lock, deadPid());
  const token = parseInvite(createInvite(root, { url: 'http://127.0.0.1:1' })).token;
  t.true(readInvites(root).has(tokenHash(token)));
  t.false(existsSync(lock), 'the lock is released');
});

test('two writers taking over the same stale lock: the second does not remove the lock the first took', (t) => {
  const root = tempDir(t);
  const lock = join(root, 'invites.lock');
  writeFileSync(lock, deadPid());
  // A live holder other than this process (whose own pid would count as a leftover).
  const live = `${process.ppid} 0123456789abcdef`;
  let tookOver = 0;
  // This writer judges the lock stale; before it removes it, another writer does the same, removes
  // it and takes the lock itself (its text written as withInvitesLock writes it).
  const err = t.throws(
    () =>
      withInvitesLock(root, () => t.fail('ran while another writer held the lock'), {
        waitMs: 200,
        beforeTakeover() {
          if (tookOver++ > 0) return;
          rmSync(lock);
          writeFileSync(lock, live, { flag: 'wx' });
        },
      }),
    { instanceOf: FeditError },
  );
  t.is(err!.code, 'INVITES_BUSY');
  t.regex(err!.message, new RegExp(`held by process ${process.ppid}`));
  t.is(readFileSync(lock, 'utf8'), live, "the other writer's lock is in place");
  t.deepEqual(readdirSync(root), ['invites.lock'], 'nothing left aside');
});

test('a release removes only its own lock', (t) => {
  const root = tempDir(t);
  const lock = join(root, 'invites.lock');
  withInvitesLock(root, () => {
    t.regex(readFileSync(lock, 'utf8'), new RegExp(`^${process.pid} [0-9a-f]{16}$`));
    rmSync(lock);
    writeFileSync(lock, 'another writer');
  });
  t.is(readFileSync(lock, 'utf8'), 'another writer');
});
