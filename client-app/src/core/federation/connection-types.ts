// What a participant's connection to a coordinator is, seen from outside: its states, the ways it
// authenticates, its options and the events it emits. The behaviour is in connection.ts.

import type {
  AuthHello,
  FederationConfig,
  FederationFinished,
  Identity,
  PublicIdentity,
  RoundClosed,
  WireError,
} from '@fedit/shared';
import type { AnnouncedRoundOpen, SecurePhaseRecord } from './announced.ts';
import type { FederationError } from './errors.ts';
import type { AdvertiserIdentity } from './secure-identities.ts';

export type ConnectionState =
  /** Trying to reach the coordinator (first time or after a drop). */
  | 'connecting'
  /** Connected, waiting for 'auth:hello' or the answer to the proof. */
  | 'authenticating'
  /** Authenticated: requests may be sent. */
  | 'ready'
  /** Closed on purpose, or after a failure that retrying cannot fix. */
  | 'closed';

/** What the connection does with each 'auth:hello'. */
export type AuthMode =
  /** Prove an existing enrolment ('auth:prove'). */
  | { kind: 'prove' }
  /** Enrol with an invite token ('enrol'); later reconnections prove the new enrolment. */
  | { kind: 'enrol'; token: Uint8Array; displayName: string }
  /** Only check the hello: for reading the federation's settings before enrolling. */
  | { kind: 'none' };

export interface ConnectionOptions {
  /** The coordinator's URL (http: or https:). */
  url: string;
  /** The federation the invite names: 'auth:hello' must announce the same one. */
  federation: string;
  /** The coordinator's public keys as the invite names them (bound into every proof). */
  coordinator: PublicIdentity;
  identity: Identity;
  auth: AuthMode;
  /**
   * The federation's config this participant agreed to (its membership's): round announcements are
   * read from signed records and this config (the training settings). Without it (joining), round
   * events are not delivered.
   */
  config?: FederationConfig;
  /** How long a request waits for its acknowledgement. */
  requestTimeoutMs?: number;
  /** Reconnect after a drop (default true). */
  reconnection?: boolean;
  /** Longest wait between reconnection attempts, ms (default socket.io's 5000). */
  reconnectionDelayMax?: number;
}

export interface AuthenticatedEvent {
  participantId: string;
  /** True when this connection enrolled the participant (rather than proving an enrolment). */
  enrolled: boolean;
}

export interface ConnectionEvents {
  state: [ConnectionState];
  /** 'auth:hello' arrived and names the right federation and protocol. */
  hello: [AuthHello];
  authenticated: [AuthenticatedEvent];
  disconnected: [reason: string];
  'round:open': [AnnouncedRoundOpen];
  'round:closed': [RoundClosed];
  /** A secure round's phase record (secagg-keys, -shares, -unmask), checked as the coordinator's. */
  'secagg:phase': [SecurePhaseRecord, AdvertiserIdentity[]];
  /** Every round was run; the coordinator serves the final adapter until it stops. */
  'federation:finished': [FederationFinished];
  /** The coordinator refused something outside an acknowledgement. */
  'server-error': [WireError];
  /** Something went wrong that the connection works around (a malformed message, a failed connect). */
  warning: [message: string];
  /**
   * A failure that reconnecting cannot fix (refused enrolment or proof, another federation, a
   * message not signed by the coordinator the invite pins); the connection closes.
   */
  failed: [FederationError];
}
