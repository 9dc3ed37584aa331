// Errors of the participant's federation code. Refusals from the coordinator keep the code and
// message the coordinator sent (`remote: true`), so the person reads the coordinator's reason and
// code can branch on it; failures of the connection itself are `transient`: waiting and trying
// again can succeed.
import { FeditError } from '@fedit/shared';

export type FederationErrorCode =
  /** A file in the fedit home folder is missing, unreadable or corrupted; the message names it. */
  | 'FEDERATION_HOME'
  /** No membership for the federation asked for (or none at all, or several to choose from). */
  | 'FEDERATION_NOT_JOINED'
  /** The coordinator could not be reached, or did not answer in time. */
  | 'FEDERATION_UNREACHABLE'
  /** The connection dropped while a request was waiting for its answer. */
  | 'FEDERATION_DISCONNECTED'
  /** The coordinator serves another federation, or speaks another protocol version. */
  | 'FEDERATION_MISMATCH'
  /** The coordinator sent something the protocol does not allow. */
  | 'FEDERATION_PROTOCOL'
  /**
   * A message is not what the coordinator the invite pins signed: a record not signed by its key,
   * of another federation or kind, or an older record than one already seen (a replay).
   */
  | 'FEDERATION_FORGED'
  /** The federation's settings cannot be used by this client. */
  | 'FEDERATION_CONFIG'
  /** The settings do not hash to the config hash the coordinator announces with them. */
  | 'FEDERATION_CONFIG_HASH'
  /** The settings changed between reading them and agreeing to them. */
  | 'FEDERATION_CONFIG_CHANGED'
  /** The local base model is not the one the federation trains. */
  | 'FEDERATION_MODEL_MISMATCH'
  /** A downloaded adapter is not the one asked for, or does not fit the federation's LoRA. */
  | 'FEDERATION_ADAPTER'
  /** The local data holds no usable training example. */
  | 'FEDERATION_DATA'
  /** The participant's chosen LoRA rank is out of range, or the federation's rule cannot take it (rank.ts). */
  | 'FEDERATION_RANK'
  /**
   * The identity file is sealed by the desktop app's OS keychain (identity-file.ts), and this
   * process cannot open it: the CLI, or another user account or computer.
   */
  | 'FEDERATION_IDENTITY_SEALED';

export class FederationError extends FeditError {
  /** The path of the field at fault, when the coordinator or a validator named one. */
  readonly field: string | undefined;
  /** True when the same request can succeed later (connection lost, no answer in time). */
  readonly transient: boolean;
  /** True when the coordinator refused the request (code and message are the coordinator's). */
  readonly remote: boolean;

  constructor(
    code: FederationErrorCode | (string & {}),
    message: string,
    options: { cause?: unknown; field?: string; transient?: boolean; remote?: boolean } = {},
  ) {
    super(code, message, { cause: options.cause });
    this.field = options.field;
    this.transient = options.transient ?? false;
    this.remote = options.remote ?? false;
  }
}

/** True for a connection failure that retrying after a reconnect can fix. */
export function isTransient(error: unknown): boolean {
  return error instanceof FederationError && error.transient;
}

/** A file of the fedit home folder that cannot be read as what it should be; the message names it. */
export function corruptedHomeFile(path: string, problem: string, cause?: unknown): FederationError {
  return new FederationError(
    'FEDERATION_HOME',
    `${path} is corrupted: ${problem}; restore it from a backup, or remove it (for a membership: join again with a new invite)`,
    { cause },
  );
}
