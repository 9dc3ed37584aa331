// The integrity rules of a round record: it is the signed record it says it is, in its place in
// one federation's chain. Pure: they judge a record against the fold of the records before it.
//
//   seq = position; prevHash = the previous record's hash (ZERO_HASH first); the hash recomputed
//   from the canonical encoding; the coordinator's signature over it; one federation; time never
//   decreasing

import type { ReportProblem } from './problems.ts';
import { roundRecordDigest, verifyRoundRecordSignature, type RoundRecord } from './record.ts';
import type { FederationState } from './state.ts';

export interface IntegrityContext {
  /** The record's position in the log (0 for the first). */
  position: number;
  /** The line before was not a record: there is nothing to check seq and prevHash against. */
  afterDamage: boolean;
  coordinatorPublicKey?: Uint8Array;
}

export function checkIntegrity(
  record: RoundRecord,
  state: FederationState,
  context: IntegrityContext,
  problem: ReportProblem,
): void {
  if (!context.afterDamage) {
    if (record.seq !== state.nextSeq) {
      problem(
        'SEQ_GAP',
        `has seq ${record.seq} where ${state.nextSeq} was expected; a record is missing, extra or moved`,
      );
    }
    if (record.prevHash !== state.head) {
      problem(
        'CHAIN_BROKEN',
        context.position === 0
          ? `is the first record but its prevHash is ${record.prevHash}, not the zero hash; records before it are missing`
          : `prevHash ${record.prevHash} is not the previous record's hash ${state.head}; a record was removed, inserted or reordered`,
      );
    }
  }
  const computed = `sha256:${Buffer.from(roundRecordDigest(record)).toString('hex')}`;
  if (computed !== record.hash) {
    problem(
      'RECORD_HASH',
      `its content hashes to ${computed}, not to its recorded hash ${record.hash}; it was changed after it was signed`,
    );
  }
  const key = context.coordinatorPublicKey;
  if (key && !verifyRoundRecordSignature(record, key)) {
    problem('RECORD_SIGNATURE', "its signature is not the coordinator's signature over its content");
  }
  if (state.federation !== undefined && record.federation !== state.federation) {
    problem(
      'FEDERATION_MISMATCH',
      `belongs to federation ${JSON.stringify(record.federation)}, not ${JSON.stringify(state.federation)}`,
    );
  }
  if (state.lastTime !== undefined && record.time < state.lastTime) {
    problem('TIME_BACKWARDS', `time ${record.time} is before the previous record's ${state.lastTime}`);
  }
}
