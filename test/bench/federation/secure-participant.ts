// One benchmark participant's secure round (`npm run bench -- federation --secure`): the app's own
// runSecureRound (client-app/src/core/federation/secure-round.ts) with the real SecureRoundClient,
// phase inbox, phase requests and masked upload (round-io.ts) over the participant's real socket;
// only the contribution differs: the global adapter plus random noise stands in for training,
// then the app's secureDelta (fixed clipping) and secureWeight (capped count), as encodable does.
// Also counts what a participant sends (countSentBytes), for plain and secure rounds alike.

import { EventEmitter } from 'node:events';
import {
  ruleRefFor,
  secureDelta,
  secureWeight,
  tensorToF32,
  type ClientEventName,
  type Identity,
  type RoundOpen,
  type RoundRecordOf,
  type Tensor,
} from '@fedit/shared';
import {
  PhaseInbox,
  downloadAdapter,
  runSecureRound,
  type FederationConnection,
  type FederationSettings,
  type Membership,
  type ParticipantEvents,
  type RoundHistoryEntry,
  type SecureRoundIO,
} from '@fedit/client/federation';
import { epochMs, type ParticipantRound } from './messages.ts';

/**
 * Wraps `connection.request` to add up what each request sends: the bytes of its binary fields
 * and the length of its other JSON text (socket.io sends binary as attachments, the rest as JSON;
 * its framing is not counted). Returns the running totals: all requests, and the upload's chunks.
 */
export function countSentBytes(connection: FederationConnection): { all: number; chunks: number } {
  const sent = { all: 0, chunks: 0 };
  const request = connection.request.bind(connection);
  connection.request = ((event: ClientEventName, payload: unknown, ...rest: unknown[]) => {
    const bytes = event.length + payloadBytes(payload);
    sent.all += bytes;
    if (event === 'update:chunk') sent.chunks += bytes;
    return (request as (...args: unknown[]) => unknown)(event, payload, ...rest);
  }) as typeof connection.request;
  return sent;
}

function payloadBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === 'string') return value.length + 2;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + payloadBytes(v) + 1, 2);
  if (value && typeof value === 'object')
    return Object.entries(value).reduce((n, [k, v]) => n + k.length + 4 + payloadBytes(v), 2);
  return String(value).length;
}

export interface SecureMember {
  index: number;
  home: string;
  identity: Identity;
  membership: Membership;
  settings: FederationSettings;
}

/**
 * Runs `member`'s part in secure round `open`; `route` receives the inbox the connection's
 * 'secagg:phase' records must go to. The result's timestamps come from the app's status events.
 */
export async function takePartSecure(
  member: SecureMember,
  connection: FederationConnection,
  open: RoundOpen & { record: RoundRecordOf<'round-open'> },
  job: { chunkBytes: number; deltaScale: number },
  route: (phases: PhaseInbox) => void,
  fakeTrained: (global: Map<string, Tensor>, seed: number) => Map<string, Tensor>,
): Promise<ParticipantRound> {
  const r: ParticipantRound = {
    round: open.round,
    openAt: epochMs(),
    downloadedAt: 0,
    builtAt: 0,
    uploadStartAt: 0,
    committedAt: 0,
    downloadBytes: 0,
    uploadBytes: 0,
    chunks: 0,
  };
  const phases = new PhaseInbox(open.round, open.record.seq);
  route(phases);
  const events = new EventEmitter<ParticipantEvents>();
  events.on('warning', (message) => (r.error ??= `participant ${member.index}: ${message}`));
  events.on('progress', (p) => {
    if (p.phase === 'upload') r.chunks = p.done;
  });
  const { settings } = member;
  const ctx: SecureRoundIO = {
    session: { ...member, connection, options: { chunkBytes: job.chunkBytes } },
    open,
    signal: new AbortController().signal,
    events,
    setStatus: (s) => {
      if (s.status === 'uploading') r.uploadStartAt = epochMs();
      if (s.status === 'done-round' && !r.committedAt) r.committedAt = epochMs();
    },
    phases,
    openRecord: open.record,
  };
  const entry: RoundHistoryEntry = { round: open.round, selected: true, uploaded: false };
  await runSecureRound(ctx, entry, async () => {
    const { bytes, tensors: global } = await downloadAdapter(open.globalAdapterHash, (hash, index) =>
      connection.request('adapter:get', { hash, index }),
    );
    r.downloadBytes = bytes.byteLength;
    r.downloadedAt = epochMs();
    const globalValues = new Map([...global].map(([name, t]) => [name, tensorToF32(t)]));
    const trained = new Map(
      [...fakeTrained(global, member.index * 1000 + open.round)].map(([name, t]) => [name, tensorToF32(t)]),
    );
    const { rule, weightCap } = settings.aggregation;
    const examples = 1 + ((member.index * 7919 + open.round) % 1000);
    const delta = secureDelta(trained, globalValues, rule, ruleRefFor(settings).config);
    r.builtAt = epochMs();
    return { delta, weight: secureWeight(rule, examples, weightCap!), trainLoss: 0, examples };
  });
  if (!entry.uploaded)
    r.error ??= `participant ${member.index}, round ${open.round}: ${entry.error ?? 'not uploaded'}`;
  else if (entry.error) {
    // Uploaded, then refused at the reveal: the coordinator had its t reveals and closed the phase
    // first. The update counted; the bench counts these apart from errors.
    r.lateReveal = true;
    r.error = undefined;
  }
  return r;
}
