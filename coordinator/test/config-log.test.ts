// federation.json is tied to the config the round log recorded at init: a coordinator refuses to
// start on an edited one, naming the fields that differ, and writes nothing; the file restored (or
// merely re-formatted) starts as before.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { FeditError, federationPaths, type FederationConfig } from '@fedit/shared';
import { startCoordinator } from '../src/index.ts';
import { initTestFederation } from './helpers/federation.ts';

const start = (dir: string) => startCoordinator({ dir, host: '127.0.0.1', port: 0, noRounds: true });

test('a coordinator refuses to start when federation.json differs from the logged config, naming the fields', async (t) => {
  const root = await initTestFederation(t);
  const paths = federationPaths(root);
  const original = readFileSync(paths.config, 'utf8');

  // Unedited: starts.
  await (await start(root)).close();
  const log = readFileSync(paths.log);

  const edited = JSON.parse(original) as FederationConfig;
  edited.limits.maxUploadBytes *= 100;
  edited.roundDeadlineSeconds += 1;
  writeFileSync(paths.config, JSON.stringify(edited, null, 2));
  const err = await t.throwsAsync(start(root), { instanceOf: FeditError });
  t.is(err?.code, 'FEDERATION_CONFIG_CHANGED');
  t.regex(
    err?.message ?? '',
    /differs from the config recorded in the round log in limits\.maxUploadBytes, roundDeadlineSeconds\./,
  );
  t.regex(err?.message ?? '', /The log is the truth/);
  t.deepEqual(readFileSync(paths.log), log, 'nothing was appended to the log');

  // A changed id is named too (not only the log's "other federation" refusal).
  writeFileSync(paths.config, JSON.stringify({ ...JSON.parse(original), id: 'fed-elsewhere' }));
  await t.throwsAsync(start(root), { code: 'FEDERATION_CONFIG_CHANGED', message: /round log in id\./ });

  // Restored, in another key order and layout: the same config, so it starts (the failed starts
  // released the folder's lock).
  const reordered = Object.fromEntries(Object.entries(JSON.parse(original) as object).reverse());
  writeFileSync(paths.config, JSON.stringify(reordered));
  await (await start(root)).close();
});
