// Joining a federation, in two steps so that a person reads the settings before agreeing:
//
//   const inspection = await inspectInvite(inviteText);   // connect, check, 'federation:info'
//   ... show inspection.settings, inspection.coordinatorFingerprint; ask ...
//   const joined = await enrol(inspection, { displayName });   // 'enrol' with the invite token
//
// `joinFederation` does both with a confirmation callback in between. Enrolling checks that the
// settings are still those the person read (same config hash). Joining a federation this home
// has already joined only authenticates (and refreshes the stored settings): it is idempotent.
import {
  MAX_DISPLAY_NAME_LENGTH,
  bytesEqual,
  fingerprint,
  generateIdentity,
  parseInvite,
  publicIdentity,
  type ContentHash,
  type Identity,
  type Invite,
  type PublicIdentity,
  type PrivacySeen,
} from '@fedit/shared';
import { DEFAULT_CONNECT_TIMEOUT_MS, FederationConnection } from './connection.ts';
import type { AuthMode, ConnectionOptions } from './connection-types.ts';
import { FederationError } from './errors.ts';
import { participantRank } from './rank.ts';
import { parseFederationInfo, parseFederationSettings, type FederationSettings } from './settings.ts';
import {
  loadOrCreateIdentity,
  readIdentity,
  readMembership,
  resolveHome,
  writeMembership,
  type Membership,
} from './store.ts';

export interface InviteInspection {
  /** The parsed invite (holds the one-time token: do not show or log it). */
  invite: Invite;
  federation: string;
  /** The coordinator's URL. */
  url: string;
  /** Fingerprint of the coordinator's keys pinned by the invite, for comparing with the operator's. */
  coordinatorFingerprint: string;
  settings: FederationSettings;
  /** The config JSON as the coordinator sent it, and its hash. */
  configText: string;
  configHash: ContentHash;
  /** This home's membership of the federation, when it has already joined. */
  membership?: Membership;
  /**
   * With differential privacy: the privacy spent so far, from the last round-closed record the
   * coordinator signed (checked); absent before a round closed, and without DP.
   */
  privacySeen?: PrivacySeen;
}

export interface JoinOptions {
  /** The fedit home folder (default: resolveHome()). */
  home?: string;
  /** How long to wait for the coordinator (default 20 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface JoinResult {
  membership: Membership;
  /** False when this home had already joined (the call only authenticated). */
  enrolled: boolean;
  /** True when the identity was created by this call. */
  identityCreated: boolean;
}

/** Parses an invite, with a clear error (InviteError) for a mistyped, truncated or expired one. */
export function readInvite(text: string | Invite): Invite {
  return typeof text === 'string' ? parseInvite(text) : text;
}

/** A display name as the protocol accepts it, or a FederationError saying what is wrong. */
export function checkDisplayName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > MAX_DISPLAY_NAME_LENGTH || /\p{Cc}/u.test(trimmed)) {
    throw new FederationError(
      'FEDERATION_CONFIG',
      `the display name must be 1 to ${MAX_DISPLAY_NAME_LENGTH} printable characters, got ${JSON.stringify(name)}`,
      { field: 'displayName' },
    );
  }
  return trimmed;
}

/** The display name used when none is given: neutral, derived from the identity. */
export function defaultDisplayName(identity: Identity): string {
  return `participant-${fingerprint(publicIdentity(identity)).slice(0, 8)}`;
}

/**
 * Step 1: reads what joining means. Connects to the coordinator the invite names, checks that it
 * serves the invite's federation, and asks for the federation's settings ('federation:info');
 * nothing is sent that would enrol, and the invite's token is not used.
 */
export async function inspectInvite(
  inviteText: string | Invite,
  options: JoinOptions = {},
): Promise<InviteInspection> {
  const invite = readInvite(inviteText);
  const home = resolveHome(options.home);
  // A throwaway identity is enough to read the settings: nothing is signed on this connection.
  const identity = (await readIdentity(home)) ?? generateIdentity();
  const connection = await connectOnce(invite, identity, { kind: 'none' }, options);
  try {
    const info = await connection.federationInfo();
    const settings = parseFederationInfo(info, `the settings of federation ${invite.federation}`);
    return {
      invite,
      federation: invite.federation,
      url: invite.url,
      coordinatorFingerprint: fingerprint(invite.coordinator),
      settings,
      configText: info.config,
      configHash: info.configHash as ContentHash,
      membership: await readMembership(home, invite.federation),
      ...(info.lastClosed?.privacy && {
        privacySeen: { epsilon: info.lastClosed.privacy.epsilon, round: info.lastClosed.round },
      }),
    };
  } finally {
    connection.close();
  }
}

/**
 * Step 2: enrols this home's identity (made on first use) with the invite's token, and saves the
 * membership. The settings must still be those `inspection` read (FEDERATION_CONFIG_CHANGED
 * otherwise: inspect again and ask again). When this home has already joined the federation, it
 * only authenticates and refreshes the stored settings. `rank`: the lower LoRA rank this
 * participant trains (rank.ts), refused (FEDERATION_RANK) before anything is sent when the
 * federation cannot take it.
 */
export async function enrol(
  inspection: InviteInspection,
  options: JoinOptions & { displayName?: string; rank?: number } = {},
): Promise<JoinResult> {
  const { invite } = inspection;
  if (options.rank !== undefined) participantRank(inspection.settings, options.rank);
  const home = resolveHome(options.home);
  const { identity, created } = await loadOrCreateIdentity(home);
  const existing = await readMembership(home, invite.federation);
  if (existing && !samePublicIdentity(existing.coordinator, invite.coordinator)) {
    throw new FederationError(
      'FEDERATION_MISMATCH',
      `this computer is already a member of federation ${invite.federation} with another coordinator (fingerprint ${fingerprint(existing.coordinator)}, this invite: ${inspection.coordinatorFingerprint}); forget the old membership first (fedit client leave ${invite.federation}) if the federation really moved`,
    );
  }
  const displayName = checkDisplayName(
    options.displayName ?? existing?.displayName ?? defaultDisplayName(identity),
  );
  const rank = options.rank ?? existing?.rank;
  const attempt = async (prove: boolean): Promise<Membership> => {
    const connection = await connectOnce(
      invite,
      identity,
      prove ? { kind: 'prove' } : { kind: 'none' },
      options,
    );
    try {
      const info = await connection.federationInfo();
      if (!prove && info.configHash !== inspection.configHash) {
        throw new FederationError(
          'FEDERATION_CONFIG_CHANGED',
          `the settings of federation ${invite.federation} changed since they were read (${inspection.configHash} -> ${info.configHash}); read them again before joining`,
        );
      }
      parseFederationInfo(info, `the settings of federation ${invite.federation}`);
      const participantId = prove
        ? connection.participantId
        : (await connection.enrol(invite.token, displayName)).participantId;
      return {
        federation: invite.federation,
        url: invite.url,
        coordinator: { sign: invite.coordinator.sign.slice(), box: invite.coordinator.box.slice() },
        participantId,
        displayName: prove && existing ? existing.displayName : displayName,
        joinedAt: existing?.joinedAt ?? Date.now(),
        config: info.config,
        configHash: info.configHash as ContentHash,
        ...(rank === undefined ? {} : { rank }),
      };
    } finally {
      connection.close();
    }
  };
  let membership: Membership | undefined;
  let enrolled = false;
  if (existing) {
    try {
      membership = await attempt(true);
    } catch (error) {
      // The coordinator no longer knows this identity (its federation was reset, or this home was
      // restored from elsewhere): enrol again with the invite, as a first join would.
      if (!(error instanceof FederationError && error.remote)) throw error;
    }
  }
  if (!membership) {
    membership = await attempt(false);
    enrolled = true;
  }
  await writeMembership(home, membership);
  return { membership, enrolled, identityCreated: created };
}

/**
 * Both steps: inspect the invite, let `confirm` see the settings (return false to stop), enrol.
 * Returns undefined when `confirm` declined.
 */
export async function joinFederation(
  inviteText: string | Invite,
  options: JoinOptions & {
    displayName?: string;
    rank?: number;
    confirm?: (inspection: InviteInspection) => boolean | Promise<boolean>;
  } = {},
): Promise<JoinResult | undefined> {
  const inspection = await inspectInvite(inviteText, options);
  if (options.confirm && !(await options.confirm(inspection))) return undefined;
  return enrol(inspection, options);
}

/**
 * A connection for a federation this computer has joined: to the coordinator its membership names,
 * proving the enrolment of `identity`. The participant's own, the pre-flight of an ended
 * federation (finished.ts) and the app's one-off adapter fetch all open theirs here.
 */
export function membershipConnection(
  membership: Pick<Membership, 'url' | 'federation' | 'coordinator' | 'config'>,
  identity: Identity,
  options: Pick<ConnectionOptions, 'requestTimeoutMs' | 'reconnection' | 'reconnectionDelayMax'> = {},
): FederationConnection {
  const { url, federation, coordinator } = membership;
  return new FederationConnection({
    url,
    federation,
    coordinator,
    identity,
    auth: { kind: 'prove' },
    config: parseFederationSettings(membership.config, `the settings of federation ${federation}`),
    ...options,
  });
}

/**
 * A one-off connection (no reconnection) to the coordinator an invite or a membership names, ready
 * to use: joining, and the requests a member makes outside `client run` (renaming).
 */
export async function connectOnce(
  invite: Pick<Invite, 'url' | 'federation' | 'coordinator'>,
  identity: Identity,
  auth: AuthMode,
  options: { timeoutMs?: number; signal?: AbortSignal },
): Promise<FederationConnection> {
  const connection = new FederationConnection({
    url: invite.url,
    federation: invite.federation,
    coordinator: invite.coordinator,
    identity,
    auth,
    reconnection: false,
  });
  connection.open();
  try {
    await connection.ready({
      timeoutMs: options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      signal: options.signal,
    });
  } catch (err) {
    connection.close();
    throw err;
  }
  return connection;
}

/** True when `a` and `b` are the same public identity. */
export function samePublicIdentity(a: PublicIdentity, b: PublicIdentity): boolean {
  return bytesEqual(a.sign, b.sign) && bytesEqual(a.box, b.box);
}
