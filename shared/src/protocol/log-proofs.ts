// The messages with which a participant checks the coordinator's round log without the folder
// (rounds/merkle.ts, rounds/tree-head.ts): the current signed tree head, a record with its
// inclusion proof under a signed head, and the consistency proof between two heads. Every field is
// bounded: sizes and seqs by MAX_LOG_RECORDS, proofs by the depth of such a tree, a record's text
// by MAX_RECORD_TEXT.
//
//   log:head         {}                 -> { head }
//   log:inclusion    { seq | round, size? } -> { record, proof, head }   head of `size` (default:
//                    now); `round` names the round-closed record of that round (a receipt's)
//   log:consistency  { from, to? }      -> { proof, from, to }       heads of both sizes
//
// `record` is the record's line as the log holds it (canonical JSON, without the newline), so the
// participant hashes exactly what was signed. Heads travel as the JSON a participant keeps.

import { int, list, object, optional, pattern, text, bytes, type Infer } from '../schema/schema.ts';
import { federationId } from './fields.ts';
import { CONTENT_HASH_PATTERN, MAX_ROUND } from './limits.ts';

/** Most records a log may hold for proofs (2^31: merkle.ts's bit arithmetic). */
export const MAX_LOG_RECORDS = 2 ** 31;
/** Most hashes in an inclusion or consistency proof of a tree of MAX_LOG_RECORDS leaves. */
export const MAX_PROOF_HASHES = 64;
/** Longest record line served (a round-closed record of many counted updates). */
export const MAX_RECORD_TEXT = 64 * 1024 * 1024;

export const treeHeadMessage = object({
  federation: federationId,
  size: int(0, MAX_LOG_RECORDS),
  root: pattern(CONTENT_HASH_PATTERN, '"sha256:" followed by 64 lowercase hex digits (a Merkle root)'),
  time: pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'a UTC time "YYYY-MM-DDTHH:MM:SS.sssZ"'),
  signature: pattern(/^[0-9a-f]{128}$/, '128 lowercase hex digits (an Ed25519 signature)'),
});
export type TreeHeadMessage = Infer<typeof treeHeadMessage>;

const proof = list(bytes(32), 0, MAX_PROOF_HASHES);

export const logHeadRequest = object({});
export const logHeadResult = object({ head: treeHeadMessage });

export const logInclusionRequest = object({
  /** The record's position; or, instead, `round`: the round-closed record of that round. */
  seq: optional(int(0, MAX_LOG_RECORDS - 1)),
  round: optional(int(1, MAX_ROUND)),
  /** The size of the head to prove under (at least seq + 1); default: the current head. */
  size: optional(int(1, MAX_LOG_RECORDS)),
});
export type LogInclusionRequest = Infer<typeof logInclusionRequest>;
export const logInclusionResult = object({
  record: text(1, MAX_RECORD_TEXT),
  proof,
  head: treeHeadMessage,
});
export type LogInclusionResult = Infer<typeof logInclusionResult>;

export const logConsistencyRequest = object({
  from: int(0, MAX_LOG_RECORDS),
  /** Default: the current head. */
  to: optional(int(0, MAX_LOG_RECORDS)),
});
export type LogConsistencyRequest = Infer<typeof logConsistencyRequest>;
export const logConsistencyResult = object({ proof, from: treeHeadMessage, to: treeHeadMessage });
export type LogConsistencyResult = Infer<typeof logConsistencyResult>;

/** The log events, for CLIENT_MESSAGES (messages.ts). */
export const LOG_PROOF_MESSAGES = {
  'log:head': { payload: logHeadRequest, result: logHeadResult },
  'log:inclusion': { payload: logInclusionRequest, result: logInclusionResult },
  'log:consistency': { payload: logConsistencyRequest, result: logConsistencyResult },
} as const;
