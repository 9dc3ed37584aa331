import { FeditError } from '../errors.ts';

export type SecAggErrorCode =
  /** A fixed-point configuration is invalid or could overflow the ring for its participants. */
  | 'SECAGG_CONFIG'
  /** An input (update, seed, key, share, id, round) is malformed; the message names the field. */
  | 'SECAGG_INPUT'
  /** Shares do not reconstruct a secret: too few, duplicated, out of range, or inconsistent. */
  | 'SECAGG_SHARES'
  /** A request would reveal both kinds of secret of one participant, or too few survive. */
  | 'SECAGG_REFUSED'
  /** A secure round's message came in the wrong phase (too early or too late). */
  | 'SECAGG_PHASE'
  /** A secure round's message names a participant the phase does not include. */
  | 'SECAGG_STRANGER'
  /** A participant sent a phase's message twice. */
  | 'SECAGG_REPEAT'
  /** A participant's signature over its advert, shares or reveal does not verify. */
  | 'SECAGG_SIGNATURE'
  /** Unmasking would expose a survivor's input (all its pair masks revealed): the round aborts. */
  | 'SECAGG_EXPOSED'
  /** Fewer than the threshold remain: the round aborts and nothing is revealed. */
  | 'SECAGG_ABORT';

/** Raised by the secure-aggregation primitives for invalid inputs and refused requests. */
export class SecAggError extends FeditError {
  constructor(
    override readonly code: SecAggErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
