// 'participant:rename': an authenticated participant asks to be shown under a new display name,
// signed with its own key (shared/protocol/rename.ts). The answer follows the rename record: the
// log holds the participant's signature, so an auditor can check the participant asked for it.

import { toHex, verifyRename, type ClientPayload, type RenameResult } from '@fedit/shared';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { RefusedError } from './refusal.ts';
import type { Sessions } from './sessions.ts';
import type { FeditSocket } from './transport.ts';

export class Renaming {
  /** Participants whose rename record is being appended: one at a time each. */
  readonly #inProgress = new Set<string>();

  constructor(private readonly o: { federation: string; ledger: Ledger; sessions: Sessions; emit: Emit }) {}

  async rename(socket: FeditSocket, p: ClientPayload<'participant:rename'>): Promise<RenameResult> {
    const { ledger, sessions, federation } = this.o;
    const participant = sessions.participantOf(socket);
    const known = ledger.state.participant(participant);
    if (known === undefined) throw new RefusedError('AUTH_REQUIRED', 'this participant is not enrolled');
    if (known.revoked)
      throw new RefusedError(
        'AUTH_REVOKED',
        `this identity was removed from the federation: ${known.revoked.reason}`,
      );
    const nonce = toHex(p.nonce);
    if (ledger.state.hasRenameNonce(nonce))
      throw new RefusedError(
        'RENAME_REPLAYED',
        'this rename request was already used; sign a new one',
        'payload.nonce',
      );
    if (known.displayName === p.displayName)
      throw new RefusedError(
        'RENAME_UNCHANGED',
        `you are already shown as ${p.displayName}`,
        'payload.displayName',
      );
    const fields = { federation, participant, displayName: p.displayName, nonce: p.nonce };
    if (!verifyRename(new Uint8Array(Buffer.from(known.publicKey, 'hex')), fields, p.signature))
      throw new RefusedError(
        'PROTOCOL_SIGNATURE',
        "payload.signature does not verify: the rename was not signed with this participant's key for this federation, name and nonce",
        'payload.signature',
      );
    if (this.#inProgress.has(participant))
      throw new RefusedError(
        'RENAME_IN_PROGRESS',
        'a rename of this participant is in progress; try again in a moment',
      );
    this.#inProgress.add(participant);
    try {
      await ledger.append({
        kind: 'rename',
        body: { participant, displayName: p.displayName, nonce, signature: toHex(p.signature) },
      });
    } finally {
      this.#inProgress.delete(participant);
    }
    this.o.emit({ type: 'renamed', participant, displayName: p.displayName });
    return { displayName: p.displayName };
  }
}
