// The desktop app after joining, typed and clicked as a person would, in Debian's Chromium
// (playwright-core) against the real client core through the development shell and a real
// coordinator on loopback: "You joined as X" has a name field and Save; the new name is sent as a
// signed rename, the coordinator records it (the audit passes), the page and the membership file
// show it, and a name the coordinator refuses (unchanged) is said on the page.

import test from 'ava';
import { join } from 'node:path';
import { auditFederation } from '@fedit/shared';
import { startDevShell } from '../src/app/dev-shell.ts';
import { listMemberships } from '../src/core/federation/store.ts';
import { startTestFederation, tempDir } from './app-fixture.ts';
import { byId, chromiumMissing, openPage } from './app-page.ts';

test('after joining, a new name typed into "You joined as" and saved is recorded by the coordinator and shown', async (t) => {
  if (chromiumMissing) return t.log(`skipped: ${chromiumMissing}`) as unknown as void;
  const dir = await tempDir(t, 'fedit-app-ui-rename-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const home = join(dir, 'home');
  const shell = await startDevShell({ home, probeGpu: async () => false });
  t.teardown(() => shell.close());
  const { page, pageErrors } = await openPage(t);

  await page.goto(shell.url);
  await byId(page, 'create-identity').click();
  await byId(page, 'section-federation').waitFor();
  await byId(page, 'display-name').fill('Ada');
  await byId(page, 'invite-input').fill(fed.invite());
  await byId(page, 'invite-check').click();
  await byId(page, 'invite-settings').waitFor();
  await byId(page, 'join').click();
  await byId(page, 'federation-summary').waitFor();
  t.is(await byId(page, 'joined-as').textContent(), 'Ada');
  t.is(await byId(page, 'rename-input').inputValue(), 'Ada');

  // The new name, typed key by key, then Save.
  await byId(page, 'rename-input').fill('');
  await byId(page, 'rename-input').click();
  await page.keyboard.type('Ada Lovelace');
  await byId(page, 'rename-save').click();
  const renamed = await fed.waitFor((e) => e.type === 'renamed');
  t.like(renamed, { type: 'renamed', displayName: 'Ada Lovelace' });
  await byId(page, 'joined-as')
    .filter({ hasText: /^Ada Lovelace$/ })
    .waitFor();
  t.is((await listMemberships(home))[0].displayName, 'Ada Lovelace', 'the membership file keeps it');
  const audit = await auditFederation(fed.dir);
  t.true(audit.ok, JSON.stringify(audit.firstFailure));

  // Saving the same name again: the coordinator's refusal is said on the page.
  await byId(page, 'rename-save').click();
  await byId(page, 'rename-error')
    .filter({ hasText: /already shown as Ada Lovelace/ })
    .waitFor();
  t.deepEqual(pageErrors, []);
});
