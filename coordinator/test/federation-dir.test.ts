// Creating a federation, inviting, and auditing a log that is only its first record; tampering
// with anything stored is caught.

import test from 'ava';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFederation, parseInvite } from '@fedit/shared';
import { createInvite, openFederationDir, readInvites } from '../src/index.ts';
import { initInProcess } from './helpers/federation.ts';

test('init writes keys (owner-only), settings, the initial adapter and a verifying log; a second init refuses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-fed-'));
  try {
    const fed = join(dir, 'fed');
    const { config } = await initInProcess(fed, { rounds: 3 });
    t.is(statSync(join(fed, 'keys', 'coordinator.json')).mode & 0o777, 0o600);
    t.is(openFederationDir(fed).config.id, config.id);
    const audit = await auditFederation(fed);
    t.true(audit.ok, JSON.stringify(audit.problems));
    t.is(audit.records, 1);
    await t.throwsAsync(initInProcess(fed, {}), { message: /already holds a federation/ });

    const inviteText = createInvite(fed, { url: 'http://127.0.0.1:7150', note: 'alice' });
    const invite = parseInvite(inviteText);
    t.is(invite.federation, config.id);
    const states = [...readInvites(fed).values()];
    t.is(states.length, 1);
    t.is(states[0].note, 'alice');
    t.false(
      readFileSync(join(fed, 'invites.jsonl'), 'utf8').includes(Buffer.from(invite.token).toString('hex')),
      'only a hash of the token is stored',
    );

    // tampering with the stored initial adapter or the log is caught
    const log = join(fed, 'log', 'rounds.jsonl');
    const original = readFileSync(log, 'utf8');
    const tampered = original.replace('\\"rounds\\":3', '\\"rounds\\":4'); // inside the config's JSON text
    t.not(tampered, original);
    writeFileSync(log, tampered);
    const caught = await auditFederation(fed);
    t.false(caught.ok);
    t.regex(caught.firstFailure!.message, /record 0/);
    writeFileSync(log, original);
    appendFileSync(log, '{"seq":1,"torn'); // a crash mid-append
    const torn = await auditFederation(fed);
    t.true(torn.ok, 'a torn tail is not a record');
    t.truthy(torn.tornTail);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openFederationDir and audit say what is missing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-fed-'));
  try {
    t.throws(() => openFederationDir(dir), { message: /no federation\.json/ });
    await t.throwsAsync(auditFederation(dir), { message: /no round log/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
