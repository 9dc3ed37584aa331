// The participant's side of signed announcements (@fedit/shared rounds/announcement.ts): every
// 'round:open', 'round:closed', 'federation:finished', 'secagg:phase' and 'federation:info' carries the signed
// record of the coordinator's log that says it, and the participant acts on what the record says.
//
// Two checks. A record must be the coordinator's: signed under the key the invite pinned, of the
// invite's federation, of the kind the message announces (the connection checks each on arrival).
// And it must not be older than what this participant has seen: the highest record position seen
// is kept per federation in the home, `announced/<federation>.json` {"version":1,"seq":n,"hash":h},
// so an old round announcement replayed later, even after a restart, is refused, and a different
// record at a position already seen (a coordinator showing two logs) is caught. Either failure is
// FEDERATION_FORGED naming what was forged; nothing the participant keeps is changed by it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AnnouncementError,
  FINISHED_RECORD_KINDS,
  configView,
  federationFinishedView,
  roundClosedView,
  roundOpenView,
  verifyAnnouncedRecord,
  type AnnouncedConfig,
  type AnnouncementTrust,
  type FederationConfig,
  type FederationFinished,
  type RecordPosition,
  type RoundClosed,
  type RoundOpen,
  type RoundRecord,
  type RoundRecordOf,
} from '@fedit/shared';
import { corruptedHomeFile, FederationError } from './errors.ts';
import { ensurePrivateDir, writePrivateFile } from './store.ts';

export type AnnouncedEvent = 'round:open' | 'round:closed' | 'federation:finished' | 'secagg:phase';

/** A round announcement: what its record says, and the record (checked as the coordinator's). */
export type AnnouncedRoundOpen = RoundOpen & { record: RoundRecordOf<'round-open'> };

/** The kinds of record a 'secagg:phase' may carry (a secure round's phases, in this order). */
export const SECURE_PHASE_KINDS = [
  'secagg-keys',
  'secagg-shares',
  'secagg-unmask',
  'secagg-consistency',
] as const;
/** A secure round's phase record, checked as the coordinator's. */
export type SecurePhaseRecord = Extract<RoundRecord, { kind: (typeof SECURE_PHASE_KINDS)[number] }>;

/** What the record a round event carries says, once it is checked as the coordinator's. */
export function announcedView(
  event: AnnouncedEvent,
  message: { record: unknown; opened?: unknown },
  config: FederationConfig,
  trust: AnnouncementTrust,
): AnnouncedRoundOpen | RoundClosed | FederationFinished | SecurePhaseRecord {
  return forgeryChecked(() => {
    // Checked as every record is; which round and phase it belongs to is the round task's to check.
    if (event === 'secagg:phase')
      return verifyAnnouncedRecord(message.record, SECURE_PHASE_KINDS, trust, "a secure round's phase");
    if (event === 'round:open') {
      const record = verifyAnnouncedRecord(message.record, ['round-open'], trust, 'a round announcement');
      // The record goes along: a secure round's graph is seeded by its hash (secure-round.ts).
      return { ...roundOpenView(record, config), record };
    }
    if (event === 'federation:finished') {
      const finished = verifyAnnouncedRecord(
        message.record,
        FINISHED_RECORD_KINDS,
        trust,
        "the federation's end",
      );
      return federationFinishedView(finished, config);
    }
    const what = "a round's result";
    const closed = verifyAnnouncedRecord(message.record, ['round-closed', 'round-aborted'], trust, what);
    const opened =
      message.opened === undefined
        ? undefined
        : verifyAnnouncedRecord(message.opened, ['round-open'], trust, `${what}'s round announcement`);
    return roundClosedView(closed, opened);
  });
}

/** The federation's settings from the config record 'federation:info' answers, checked as the coordinator's. */
export function announcedConfig(record: unknown, trust: AnnouncementTrust): AnnouncedConfig {
  const what = `the settings of federation ${trust.federation}`;
  return forgeryChecked(() => configView(verifyAnnouncedRecord(record, ['config'], trust, what), what));
}

/**
 * The last closed round 'federation:info' answers with (differential privacy), checked as the
 * coordinator's: what the privacy spent so far is read from. A record of another kind is refused.
 */
export function announcedLastClosed(record: unknown, trust: AnnouncementTrust): RoundClosed {
  const what = `the last closed round of federation ${trust.federation}`;
  return forgeryChecked(() => roundClosedView(verifyAnnouncedRecord(record, ['round-closed'], trust, what)));
}

/** Runs `read`, turning a record that is not the coordinator's into FEDERATION_FORGED. */
function forgeryChecked<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof AnnouncementError)) throw error;
    throw new FederationError('FEDERATION_FORGED', error.message, { cause: error });
  }
}

// ---- the newest record seen ----------------------------------------------------------------------

const announcedPath = (home: string, federation: string) => join(home, 'announced', `${federation}.json`);

function isPosition(value: unknown): value is RecordPosition & { version: 1 } {
  const v = value as Partial<RecordPosition & { version: number }> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.version === 1 &&
    Number.isSafeInteger(v.seq) &&
    v.seq! >= 0 &&
    typeof v.hash === 'string'
  );
}

/** The newest record position this participant saw of `federation`; undefined before any. */
export async function newestAnnounced(home: string, federation: string): Promise<RecordPosition | undefined> {
  const path = announcedPath(home, federation);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw corruptedHomeFile(path, 'it is not JSON', error);
  }
  if (!isPosition(value)) throw corruptedHomeFile(path, 'it does not hold {"version":1,"seq":n,"hash":h}');
  return { seq: value.seq, hash: value.hash };
}

/**
 * Refuses a record older than the newest one seen of `federation` (a replay), or a different record
 * at the position of the newest (a forked log), with FEDERATION_FORGED naming `what`; keeps
 * `signed` as the newest when it is newer. The same record again (announced after a reconnection)
 * passes.
 */
export async function checkNewestAnnounced(
  home: string,
  federation: string,
  signed: RecordPosition,
  what: string,
): Promise<void> {
  const newest = await newestAnnounced(home, federation);
  if (newest && signed.seq < newest.seq)
    throw new FederationError(
      'FEDERATION_FORGED',
      `${what} is record ${signed.seq} of the round log, older than record ${newest.seq} this participant already saw: an old message replayed, or the coordinator shows another log; refused`,
    );
  if (newest && signed.seq === newest.seq) {
    if (signed.hash === newest.hash) return;
    throw new FederationError(
      'FEDERATION_FORGED',
      `${what} is record ${signed.seq} of the round log, but this participant saw another record ${newest.seq} (${newest.hash}, now ${signed.hash}): the coordinator shows different logs`,
    );
  }
  const dir = join(home, 'announced');
  await ensurePrivateDir(home);
  await ensurePrivateDir(dir);
  await writePrivateFile(
    announcedPath(home, federation),
    JSON.stringify({ version: 1, seq: signed.seq, hash: signed.hash }) + '\n',
  );
}
