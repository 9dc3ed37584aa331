// A participant changes its display name after joining, as a user would: `fedit client rename`
// against a real coordinator on loopback. The coordinator logs the signed rename (the audit passes
// and the operator's status shows the new name), the membership file keeps it, and a rename that
// changes nothing or a name the protocol refuses is reported without touching the file.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFederation } from '@fedit/shared';
import { createInvite, federationStatus } from '@fedit/coordinator';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { joinFederation, readMembership } from '../src/core/federation/index.ts';
import { tinyLoopbackFederation } from './fixtures/loopback.ts';

test('fedit client rename: the coordinator logs the signed rename, the audit passes, the membership keeps the name', async (t) => {
  const fed = await tinyLoopbackFederation(t, {});
  const home = await mkdtemp(join(tmpdir(), 'fedit-rename-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const joined = await joinFederation(createInvite(fed.fedDir, { url: fed.coordinator.url }), {
    home,
    displayName: 'Dana',
  });
  const { federation, participantId } = joined!.membership;

  const renamed = await fedit('client', 'rename', 'Dana K.', '--json', '--home', home);
  t.is(renamed.code, 0, renamed.stderr);
  t.deepEqual(JSON.parse(renamed.stdout), { federation, participantId, displayName: 'Dana K.' });
  t.is((await readMembership(home, federation))?.displayName, 'Dana K.');
  t.true(fed.recorder.events.some((e) => e.type === 'renamed' && e.displayName === 'Dana K.'));
  t.deepEqual((await federationStatus(fed.fedDir)).participants, [{ id: participantId, name: 'Dana K.' }]);
  const audit = await auditFederation(fed.fedDir);
  t.true(audit.ok, JSON.stringify(audit.firstFailure));

  const unchanged = await fedit('client', 'rename', 'Dana K.', '--home', home);
  assertCleanFailure(
    t,
    unchanged,
    /refused participant:rename: you are already shown as Dana K\. \[RENAME_UNCHANGED\]/,
  );
  const empty = await fedit('client', 'rename', '   ', '--home', home);
  assertCleanFailure(t, empty, /display name must be 1 to 64/, 65);
  t.is((await readMembership(home, federation))?.displayName, 'Dana K.');
});
