// One real federation a test file audits again and again: a coordinator on loopback, two
// participants speaking the protocol, three rounds in which every update is counted (updates that
// differ, so no update is the aggregate and each blob is named once), then finished and stopped.
// Made once per test file, on first use, and removed after its last test; tests tamper with copies.

import test, { type ExecutionContext } from 'ava';
import { federationPaths, readRoundLog, type RoundRecord } from '@fedit/shared';
import { createInvite, openFederationDir } from '../../src/index.ts';
import { startTestFederation } from './federation.ts';
import { Peer } from './peer.ts';

export interface FinishedFederation {
  root: string;
  records: RoundRecord[];
  /** An invite string (it carries the coordinator's key, as an auditor may be given it). */
  invite: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/**
 * Call at the top of a test file (ava's hooks are declared before tests run): returns the getter of
 * the file's federation, made on first use and removed after the file's last test.
 */
export function finishedFederationForFile(): () => Promise<FinishedFederation> {
  const cleanups: (() => unknown)[] = [];
  const fileLifetime = { teardown: (f: () => unknown) => cleanups.push(f) } as unknown as ExecutionContext;
  test.after.always(async () => {
    for (const f of cleanups.reverse()) await f();
  });
  let federation: Promise<FinishedFederation> | undefined;
  return () => (federation ??= run(fileLifetime));
}

async function run(fileLifetime: ExecutionContext): Promise<FinishedFederation> {
  const fed = await startTestFederation(fileLifetime, {
    rounds: 3,
    participantsPerRound: { fraction: 1, minimum: 2 },
    minUpdates: 2,
  });
  const peers = [
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'a'),
    await (await Peer.connect(fed.target())).join(fed.inviteToken(), 'b'),
  ];
  for (let round = 1; round <= 3; round++) {
    for (const [i, peer] of peers.entries()) {
      const open = await peer.roundOpen(round);
      const update = await peer.update(open, {
        exampleCount: 5 + 7 * i + round,
        values: (_, global) => global.map((v, k) => v + 1e-3 * (i + 1) * Math.sin(k + round)),
      });
      const ack = await peer.upload(update);
      if (!ack.ok) throw new Error(`round ${round}: ${JSON.stringify(ack)}`);
    }
    await peers[0].roundClosed(round);
  }
  await fed.coordinator.finished;
  const invite = createInvite(fed.root, { url: fed.coordinator.url, note: 'auditor' });
  await fed.coordinator.close();
  peers.forEach((p) => p.close());
  return {
    root: fed.root,
    records: (await readRoundLog(federationPaths(fed.root).log)).records,
    invite,
    publicKey: fed.target().coordinator.sign,
    secretKey: openFederationDir(fed.root).identity.sign.secretKey,
  };
}
