// This computer's federation, as the app sees it: reading an invite's settings before joining,
// joining, leaving, the one membership it takes part in (a home the CLI also used may hold more:
// the app uses the first), and the rounds it saw there (./history-file.ts).

import { readFileSync } from 'node:fs';
import { fingerprint } from '@fedit/shared';
import {
  keptReceiptsLine,
  parseReceiptsText,
  receiptsPath,
  type ReceiptsFile,
} from '../core/federation/receipts.ts';
import type { FederationSettings } from '../core/federation/index.ts';
// The federation's files directly, not its index: the index also exports the Participant, which
// loads the compute engine (onnxruntime), and that belongs in the training worker only.
import {
  checkDisplayName,
  enrol,
  inspectInvite,
  readInvite,
  type InviteInspection,
} from '../core/federation/join.ts';
import { renameParticipant } from '../core/federation/rename.ts';
import { parseFederationSettings } from '../core/federation/settings.ts';
import { listMemberships, removeMembership, type Membership } from '../core/federation/store.ts';
import type { FinalAdapter } from '../core/federation/events.ts';
import { saveAdapterFolder } from './adapter-save.ts';
import type { FederationSummary, SavedAdapter } from './api.ts';
import type { AppLog } from './app-log.ts';
import { FederationEndFile, type FederationEnd } from './federation-end.ts';
import type { HistoryFile } from './history-file.ts';
import type { KeptFiles } from './kept-files.ts';
import { summarize } from './federation-summary.ts';
import { AppError } from './validate.ts';

/** Invites read recently, kept until the person joins one. */
const KEPT_INSPECTIONS = 4;
/** How long reading an invite's settings, or enrolling, may take. */
const TIMEOUT_MS = 15_000;

export class FederationMembership {
  readonly #home: string;
  readonly #log: AppLog;
  /** The rounds this computer saw in the federation, oldest first. */
  readonly history: HistoryFile;
  /** Whether the federation has ended, and where its final adapter is (./federation-end.ts). */
  readonly end: FederationEndFile;
  #inspections = new Map<string, InviteInspection>();
  #membership: Membership | undefined;
  #settings: FederationSettings | undefined;

  constructor(home: string, log: AppLog, history: HistoryFile, files: KeptFiles, appDir: string) {
    this.#home = home;
    this.#log = log;
    this.history = history;
    this.end = new FederationEndFile(appDir, files);
  }

  /** The federation this computer takes part in. */
  get current(): Membership | undefined {
    return this.#membership;
  }

  /** Its settings. */
  get settings(): FederationSettings | undefined {
    return this.#settings;
  }

  summary(): FederationSummary | undefined {
    const m = this.#membership;
    const s = this.#settings;
    if (!m || !s) return undefined;
    // The newest round record this participant verified that carries a privacy account.
    const seen = this.history.entries.findLast((e) => e.epsilon !== undefined);
    const summary = summarize(
      s,
      m.url,
      fingerprint(m.coordinator),
      m,
      seen && { epsilon: seen.epsilon!, round: seen.round },
    );
    const sent = this.history.entries.filter((e) => e.uploaded && e.outcome === 'aggregated').length;
    const signedLog = keptReceiptsLine(this.#receipts(m.federation), sent);
    return signedLog === undefined ? summary : { ...summary, signedLog };
  }

  /** The receipts kept (receipts.ts); none when the file is unreadable (verify reports that). */
  #receipts(federation: string): ReceiptsFile {
    try {
      return parseReceiptsText(readFileSync(receiptsPath(this.#home, federation), 'utf8'));
    } catch {
      return { receipts: [], heads: [] };
    }
  }

  /** Reads the memberships on disk, and the rounds of the one taken part in. */
  async load(): Promise<void> {
    const [membership] = await listMemberships(this.#home);
    this.#membership = membership;
    this.#settings = membership && parseFederationSettings(membership.config);
    await this.history.open(membership?.federation);
    await this.end.open(membership?.federation);
  }

  /** Reads the settings of an invite's federation (kept for joining it). */
  async inspect(invite: string): Promise<FederationSummary> {
    const textInvite = inviteText(invite);
    const inspection = await inspectInvite(textInvite, { home: this.#home, timeoutMs: TIMEOUT_MS });
    this.#inspections.set(textInvite, inspection);
    while (this.#inspections.size > KEPT_INSPECTIONS) {
      this.#inspections.delete(this.#inspections.keys().next().value!);
    }
    this.#log.info(`read the settings of federation ${inspection.federation} at ${inspection.url}`);
    return summarize(
      inspection.settings,
      inspection.url,
      inspection.coordinatorFingerprint,
      inspection.membership,
      inspection.privacySeen,
    );
  }

  /** The settings of an invite read before (inspect), for measuring what joining would cost. */
  inspectedSettings(invite: string): FederationSettings {
    const inspection = this.#inspections.get(inviteText(invite));
    if (!inspection) {
      throw new AppError(
        'APP_NOT_READY',
        "read the federation's settings first: paste the invite and press Check",
      );
    }
    return inspection.settings;
  }

  /** Joins the federation of an invite read before, as `identity` (a fingerprint) named `displayName`. */
  async join(invite: string, as: { identity?: string; displayName: string }): Promise<void> {
    const textInvite = inviteText(invite);
    const inspection = this.#inspections.get(textInvite);
    if (!inspection) {
      throw new AppError(
        'APP_NOT_READY',
        "read the federation's settings before joining: paste the invite and review what it asks of you",
      );
    }
    if (!as.identity) throw new AppError('APP_NOT_READY', 'create your identity before joining a federation');
    if (this.#membership && this.#membership.federation !== inspection.federation) {
      throw new AppError(
        'APP_BUSY',
        `this app takes part in one federation at a time: leave ${this.#membership.federation} (${this.#settings?.name}) first`,
      );
    }
    const displayName = as.displayName ? checkDisplayName(as.displayName) : undefined;
    const joined = await enrol(inspection, { home: this.#home, displayName, timeoutMs: TIMEOUT_MS });
    this.#inspections.delete(textInvite);
    const { federation, participantId } = joined.membership;
    this.#log.info(
      `${joined.enrolled ? 'joined' : 'rejoined'} federation ${federation} as ${joined.membership.displayName} (participant ${participantId})`,
    );
    await this.load();
  }

  /** The federation has ended with `final`, its adapter kept here: recorded, and logged. */
  async recordEnd(final: FinalAdapter): Promise<FederationEnd> {
    const end = {
      rounds: final.rounds,
      adapterHash: final.hash,
      adapterPath: final.path,
      endedAt: Date.now(),
    };
    await this.end.record(end);
    this.#log.info(`the federation has ended after ${end.rounds} rounds; final adapter ${end.adapterHash}`);
    return end;
  }

  /** "Save adapter…": the newest global adapter kept here, as a PEFT folder in `folder` (./adapter-save.ts). */
  async saveAdapter(folder: string): Promise<SavedAdapter> {
    const membership = this.#membership;
    if (!membership)
      throw new AppError('APP_NOT_READY', 'join a federation first: it is its adapter that is saved');
    const saved = await saveAdapterFolder(this.#home, membership.federation, folder, this.end.current);
    this.#log.info(`saved round ${saved.round}'s global adapter (${saved.adapterHash}) as a PEFT folder`);
    return saved;
  }

  /**
   * Asks the coordinator to show this participant as `displayName` (core/federation/rename.ts: a
   * request on its own connection, which replaces the training worker's until it reconnects).
   */
  async rename(displayName: string): Promise<void> {
    const membership = this.#membership;
    if (!membership)
      throw new AppError('APP_NOT_READY', 'join a federation first: the name is the one it shows');
    const renamed = await renameParticipant(displayName, {
      home: this.#home,
      federation: membership.federation,
      timeoutMs: TIMEOUT_MS,
    });
    this.#log.info(`renamed in federation ${renamed.federation}: now shown as ${renamed.displayName}`);
    this.#membership = renamed;
  }

  /** Forgets the membership, the participant's round folders and the history (the identity stays). */
  async leave(): Promise<void> {
    const membership = this.#membership;
    if (!membership) return;
    await removeMembership(this.#home, membership.federation);
    await this.history.remove();
    await this.end.remove();
    this.#log.info(`left federation ${membership.federation}`);
    this.#membership = undefined;
    this.#settings = undefined;
  }
}

function inviteText(invite: string): string {
  const value = invite.trim();
  readInvite(value); // a mistyped invite fails here, naming what is wrong, before any network
  return value;
}
