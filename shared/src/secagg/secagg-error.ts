import { FeditError } from '../errors.ts';

export type SecAggErrorCode =
  /** A fixed-point configuration is invalid or could overflow the ring for its participants. */
  | 'SECAGG_CONFIG'
  /** An input (update, seed, key, share, id, round) is malformed; the message names the field. */
  | 'SECAGG_INPUT'
  /** Shares do not reconstruct a secret: too few, duplicated, out of range, or inconsistent. */
  | 'SECAGG_SHARES'
  /** A request would reveal both kinds of secret of one participant, or too few survive. */
  | 'SECAGG_REFUSED';

/** Raised by the secure-aggregation primitives for invalid inputs and refused requests. */
export class SecAggError extends FeditError {
  constructor(
    override readonly code: SecAggErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
