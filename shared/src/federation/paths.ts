// A federation folder: everything a coordinator keeps, in one folder an operator can back up and
// an auditor can copy (an audit needs only log/ and blobs/, and keys/coordinator.pub.json when no
// key is given).
//
//   federation.json            the federation config (FederationConfig), as the operator set it
//   keys/coordinator.json      the coordinator's identity (secret keys; owner-only permissions)
//   keys/coordinator.pub.json  its public half, for auditors
//   log/rounds.jsonl           the append-only, hash-chained, signed round log: the source of truth
//   blobs/                     content-addressed tensor sets (global adapters and counted updates)
//   index.json                 lowdb index (participants, invites, round summaries), rebuilt from the log
//   uploads/                   updates being received (discarded when their round ends)

import { join } from 'node:path';

export interface FederationPaths {
  root: string;
  config: string;
  keys: string;
  /** keys/coordinator.pub.json: the coordinator's public keys. */
  publicKey: string;
  log: string;
  blobs: string;
  index: string;
  uploads: string;
}

export function federationPaths(root: string): FederationPaths {
  return {
    root,
    config: join(root, 'federation.json'),
    keys: join(root, 'keys', 'coordinator.json'),
    publicKey: join(root, 'keys', 'coordinator.pub.json'),
    log: join(root, 'log', 'rounds.jsonl'),
    blobs: join(root, 'blobs'),
    index: join(root, 'index.json'),
    uploads: join(root, 'uploads'),
  };
}
