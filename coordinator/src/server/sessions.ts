// Who is on which connection. A connection becomes a participant's by proving its identity
// (auth:prove, or enrolling); the newest connection of a participant replaces the older one, and
// every handler that acts for a participant asks for it here first.
//
// Readiness: a participant is ready once its current connection said so ('participant:ready'
// {ready: true}: model verified, data validated, able to train now), and stops being ready when
// it says it is not (paused, leaving), when that connection closes, or when a newer connection of
// it replaces the old one (the new one starts not ready). Rounds select only among the ready.

import {
  verifyAuthProof,
  type AuthResult,
  type ClientPayload,
  type ParticipantReadyResult,
} from '@fedit/shared';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { timed } from './profile.ts';
import { RefusedError } from './refusal.ts';
import { allowFullFrames, type FeditSocket } from './transport.ts';

export class Sessions {
  readonly #sockets = new Map<string, FeditSocket>(); // participant id -> its current socket
  readonly #ready = new Set<string>(); // participants whose current connection said it is ready
  #readyAnnouncements = 0;

  constructor(
    private readonly o: {
      ledger: Ledger;
      emit: Emit;
      /** How many ready participants a round needs to open (told to whoever says ready). */
      needed: number;
      /** A participant is now online (the round runner announces the open round to it). */
      onAuthenticated(socket: FeditSocket): void;
      /** A participant became ready or stopped being ready (the round runner re-checks). */
      onReadiness(): void;
    },
  ) {}

  isConnected(participant: string): boolean {
    return this.#sockets.has(participant);
  }

  /** The participants ready now (enrolled and connected, whose connection said ready), sorted. */
  readyParticipants(): string[] {
    return [...this.#ready].sort();
  }

  /** How many times a participant said it became ready: grows whenever new readiness arrives. */
  get readyAnnouncements(): number {
    return this.#readyAnnouncements;
  }

  /** 'participant:ready': this connection's participant can train now, or cannot. */
  setReady(socket: FeditSocket, p: ClientPayload<'participant:ready'>): ParticipantReadyResult {
    const participant = this.participantOf(socket);
    const was = this.#ready.has(participant);
    if (p.ready) this.#ready.add(participant);
    else this.#ready.delete(participant);
    if (p.ready && !was) this.#readyAnnouncements++;
    if (p.ready !== was) {
      this.o.emit({
        type: 'readiness',
        participant,
        ready: p.ready,
        ...(p.reason !== undefined && { reason: p.reason }),
      });
      this.o.onReadiness();
    }
    return { readyParticipants: this.#ready.size, needed: this.o.needed };
  }

  #notReady(participant: string, reason: string): void {
    if (!this.#ready.delete(participant)) return;
    this.o.emit({ type: 'readiness', participant, ready: false, reason });
    this.o.onReadiness();
  }

  /** The participant this connection authenticated as, or AUTH_REQUIRED. */
  participantOf(socket: FeditSocket): string {
    if (!socket.data.participant)
      throw new RefusedError('AUTH_REQUIRED', 'authenticate first (answer auth:hello with auth:prove)');
    return socket.data.participant;
  }

  authenticate(socket: FeditSocket, participant: string): void {
    const previous = this.#sockets.get(participant);
    if (previous && previous.id !== socket.id) {
      this.#notReady(participant, 'connected again (the new connection says when it is ready)');
      previous.disconnect(true);
    }
    socket.data.participant = participant;
    allowFullFrames(socket);
    this.#sockets.set(participant, socket);
    void socket.join('participants');
    this.o.emit({ type: 'connected', participant });
    this.o.onAuthenticated(socket);
  }

  /** Closes the participant's connection, if it has one (it was revoked). */
  disconnect(participant: string): void {
    this.#sockets.get(participant)?.disconnect(true);
  }

  /** Forgets the connection when it closes, unless a newer one of the participant replaced it. */
  track(socket: FeditSocket): void {
    socket.on('disconnect', () => {
      const p = socket.data.participant;
      if (p && this.#sockets.get(p)?.id === socket.id) {
        this.#sockets.delete(p);
        this.#notReady(p, 'disconnected');
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
