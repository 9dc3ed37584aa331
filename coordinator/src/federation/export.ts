// `fedit coordinator export`: one round's global adapter, from the federation folder, as a PEFT
// adapter folder with its model card (shared/src/federation/result-adapter.ts writes it). Reads
// only: the round log, the blob store and the coordinator's public key, so it runs beside a
// running coordinator and on a copy of the folder, and never needs the secret keys.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  BlobStore,
  FeditError,
  federationPaths,
  parseCoordinatorKey,
  validateFederationConfig,
  writeFederationAdapter,
  type FederationResult,
  type LoraAdapter,
  type RoundRecord,
} from '@fedit/shared';
import { loggedConfig, readFederationLog } from './dir.ts';

export interface ExportRoundOptions {
  /** The round whose global adapter to export; default: the last round that aggregated. */
  round?: number;
  /** The adapter folder to write; must be new or empty. */
  out: string;
}

export interface ExportedRound {
  out: string;
  adapter: LoraAdapter;
  result: FederationResult;
}

/** Writes round `options.round`'s global adapter of the federation in `dir` as a PEFT folder. */
export async function exportRoundAdapter(dir: string, options: ExportRoundOptions): Promise<ExportedRound> {
  const root = resolve(dir);
  const paths = federationPaths(root);
  if (!existsSync(paths.config))
    throw new FeditError('FEDERATION_MISSING', `${root}: no federation.json; is this a federation folder?`);
  const records = await readFederationLog(paths);
  // The settings the log recorded, which the audit reads; federation.json for a log from before
  // config records carried them.
  const config = validateFederationConfig(
    loggedConfig(records) ?? (JSON.parse(await readFile(paths.config, 'utf8')) as unknown),
  );
  const closed = aggregatedRounds(records);
  const record = pickRound(closed, records, options.round, root);
  const tensors = new BlobStore(paths.blobs).get(record.body.globalAdapterOut);
  if (!tensors) {
    throw new FeditError(
      'EXPORT_BLOB_MISSING',
      `${root}: round ${record.round}'s global adapter ${record.body.globalAdapterOut} is not in ${paths.blobs}; restore blobs/ from your backup`,
    );
  }
  const upTo = closed.filter((r) => r.round <= record.round);
  const result: FederationResult = {
    config,
    round: record.round,
    adapterHash: record.body.globalAdapterOut,
    roundsAggregated: upTo.length,
    contributions: upTo.reduce((sum, r) => sum + r.body.updates.length, 0),
    rule: record.body.rule,
    logHead: records[records.length - 1].hash,
    coordinatorKey: parseCoordinatorKey(paths.publicKey).sign,
    auditFolder: root,
    exportedBy: 'coordinator',
  };
  const adapter = await writeFederationAdapter(options.out, tensors, result);
  return { out: resolve(options.out), adapter, result };
}

type ClosedRecord = Extract<RoundRecord, { kind: 'round-closed' }>;

function aggregatedRounds(records: readonly RoundRecord[]): ClosedRecord[] {
  return records.filter((r): r is ClosedRecord => r.kind === 'round-closed');
}

/** The round-closed record of `round` (default: the last); refused by name when there is none. */
function pickRound(
  closed: readonly ClosedRecord[],
  records: readonly RoundRecord[],
  round: number | undefined,
  root: string,
): ClosedRecord {
  if (round === undefined) {
    const last = closed.at(-1);
    if (!last)
      throw new FeditError(
        'EXPORT_NO_ROUND',
        `${root}: no round has aggregated yet, so there is no global adapter to export beyond the initial one`,
      );
    return last;
  }
  const found = closed.find((r) => r.round === round);
  if (found) return found;
  const aborted = records.find((r) => r.kind === 'round-aborted' && r.round === round);
  const known = closed.map((r) => r.round).join(', ') || 'none';
  throw new FeditError(
    'EXPORT_NO_ROUND',
    aborted
      ? `--round ${round}: that round was aborted (${(aborted.body as { reason: string }).reason}) and produced no global adapter; rounds that aggregated: ${known}`
      : `--round ${round}: that round has not aggregated in ${root}; rounds that aggregated: ${known}`,
  );
}
