// `fedit coordinator invite`, `revoke` and `participants` on a federation folder that no longer
// matches its round log, through the real command. invite hands out the federation's id and the
// coordinator's keys (and the joiner is then shown the settings), and revoke signs a record into
// the log: both refuse, as `start` does, naming what differs, and write nothing. participants
// lists from the log alone, so it warns and lists anyway. The folder restored, all three work.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  federationPaths,
  generateIdentity,
  parseInvite,
  serializeIdentity,
  type FederationConfig,
  type PublicIdentity,
} from '@fedit/shared';
import { assertCleanFailure } from '../../test/fixtures/fedit-cli.ts';
import { fedit } from './helpers/cli.ts';
import { startTestFederation } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const sameKey = (a: PublicIdentity, b: PublicIdentity) =>
  Buffer.from(a.sign).equals(Buffer.from(b.sign)) && Buffer.from(a.box).equals(Buffer.from(b.box));

test('invite and revoke refuse a federation.json or keys that differ from the round log; participants warns', async (t) => {
  // A federation with one enrolled participant, its coordinator stopped (revoke needs that).
  const fed = await startTestFederation(t);
  const target = fed.target();
  const alice = await (await Peer.connect(target)).join(fed.inviteToken(), 'alice');
  alice.close();
  await fed.coordinator.close();
  const paths = federationPaths(fed.root);
  const invites = join(fed.root, 'invites.jsonl');
  const original = readFileSync(paths.config, 'utf8');
  const originalKeys = readFileSync(paths.keys, 'utf8');

  // Intact: an invite carries the federation's id and the coordinator's keys.
  const ok = await fedit('coordinator', 'invite', fed.root, '--url', 'http://127.0.0.1:7150');
  t.is(ok.code, 0, ok.stderr);
  const invite = parseInvite(ok.stdout.trim());
  t.is(invite.federation, target.federation);
  t.true(sameKey(invite.coordinator, target.coordinator));

  // federation.json edited after init.
  const edited = JSON.parse(original) as FederationConfig;
  edited.limits.maxUpdateNorm *= 10;
  edited.training.lr *= 2;
  writeFileSync(paths.config, JSON.stringify(edited, null, 2));
  const log = readFileSync(paths.log);
  const invitesBefore = readFileSync(invites, 'utf8');
  const changed =
    /federation\.json differs from the config recorded in the round log in limits\.maxUpdateNorm, training\.lr\./;

  const refusedInvite = await fedit('coordinator', 'invite', fed.root, '--url', 'http://127.0.0.1:7150');
  assertCleanFailure(t, refusedInvite, changed);
  t.regex(refusedInvite.stderr, /The log is the truth/);
  t.is(readFileSync(invites, 'utf8'), invitesBefore, 'no invite was recorded');

  const refusedRevoke = await fedit('coordinator', 'revoke', fed.root, alice.id, '--reason', 'left');
  assertCleanFailure(t, refusedRevoke, changed);
  t.deepEqual(readFileSync(paths.log), log, 'nothing was appended to the log');

  const listed = await fedit('coordinator', 'participants', fed.root, '--json');
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stderr, /^warning: .*federation\.json differs from the config recorded in the round log/);
  t.like(JSON.parse(listed.stdout), [{ id: alice.id, name: 'alice', revoked: '' }]);

  // Restored: revoke works, and the list shows it without a warning.
  writeFileSync(paths.config, original);
  const revoked = await fedit('coordinator', 'revoke', fed.root, alice.id, '--reason', 'left');
  t.is(revoked.code, 0, revoked.stderr);
  t.regex(revoked.stdout, new RegExp(`revoked ${alice.id}`));
  const relisted = await fedit('coordinator', 'participants', fed.root);
  t.is(relisted.code, 0, relisted.stderr);
  t.is(relisted.stderr, '');
  t.regex(relisted.stdout, new RegExp(`${alice.id}  alice .* REVOKED .* \\(left\\)`));

  // Other keys than the ones that signed the log: an invite would send joiners to a stranger.
  writeFileSync(paths.keys, JSON.stringify(serializeIdentity(generateIdentity())));
  const strangerKeys = await fedit('coordinator', 'invite', fed.root, '--url', 'http://127.0.0.1:7150');
  assertCleanFailure(
    t,
    strangerKeys,
    /coordinator\.json holds other keys than the ones that signed the round log/,
  );
  const warned = await fedit('coordinator', 'participants', fed.root);
  t.is(warned.code, 0, warned.stderr);
  t.regex(warned.stderr, /^warning: .*holds other keys/);
  writeFileSync(paths.keys, originalKeys);
  const again = await fedit('coordinator', 'invite', fed.root, '--url', 'http://127.0.0.1:7150');
  t.is(again.code, 0, again.stderr);
  t.true(sameKey(parseInvite(again.stdout.trim()).coordinator, target.coordinator));
});
