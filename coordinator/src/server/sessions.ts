// Who is on which connection. A connection becomes a participant's by proving its identity
// (auth:prove, or enrolling); the newest connection of a participant replaces the older one, and
// every handler that acts for a participant asks for it here first.

import { verifyAuthProof, type AuthResult, type ClientPayload } from '@fedit/shared';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { timed } from './profile.ts';
import { RefusedError } from './refusal.ts';
import type { FeditSocket } from './transport.ts';

export class Sessions {
  readonly #sockets = new Map<string, FeditSocket>(); // participant id -> its current socket

  constructor(
    private readonly o: {
      ledger: Ledger;
      emit: Emit;
      /** A participant is now online (the round runner announces the open round to it). */
      onAuthenticated(socket: FeditSocket): void;
    },
  ) {}

  isConnected(participant: string): boolean {
    return this.#sockets.has(participant);
  }

  /** The participant this connection authenticated as, or AUTH_REQUIRED. */
  participantOf(socket: FeditSocket): string {
    if (!socket.data.participant)
      throw new RefusedError('AUTH_REQUIRED', 'authenticate first (answer auth:hello with auth:prove)');
    return socket.data.participant;
  }

  authenticate(socket: FeditSocket, participant: string): void {
    const previous = this.#sockets.get(participant);
    if (previous && previous.id !== socket.id) previous.disconnect(true);
    socket.data.participant = participant;
    this.#sockets.set(participant, socket);
    void socket.join('participants');
    this.o.emit({ type: 'connected', participant });
    this.o.onAuthenticated(socket);
  }

  /** Forgets the connection when it closes, unless a newer one of the participant replaced it. */
  track(socket: FeditSocket): void {
    socket.on('disconnect', () => {
      const p = socket.data.participant;
      if (p && this.#sockets.get(p)?.id === socket.id) {
        this.#sockets.delete(p);
        this.o.emit({ type: 'disconnected', participant: p });
      }
    });
  }

  /** 'auth:prove': an enrolled, unrevoked participant signs this connection's challenge. */
  prove(socket: FeditSocket, p: ClientPayload<'auth:prove'>): AuthResult {
    const challenge = socket.data.challenge.consume();
    if (!timed('crypto.verify', () => verifyAuthProof(challenge, p)))
      throw new RefusedError(
        'AUTH_FAILED',
        'the signature does not prove this identity for this connection',
        'payload.signature',
      );
    const entry = this.o.ledger.participantBySignKey(p.participant);
    if (!entry)
      throw new RefusedError(
        'AUTH_UNKNOWN',
        'this identity is not enrolled in the federation; join with an invite first',
        'payload.participant',
      );
    if (entry.revoked)
      throw new RefusedError(
        'AUTH_REVOKED',
        `this participant was removed from the federation: ${entry.revoked.reason}`,
        'payload.participant',
      );
    this.authenticate(socket, entry.id);
    return { participantId: entry.id };
  }
}
