// Taking part, as the backend (./backend.ts) wires it: the host the worker supervisor asks and
// tells (./worker-supervisor.ts), i.e. what the participant runs with (model, data, federation,
// device and threads), Automatic's device choice on a few measured steps (./device.ts), the end of
// the federation, and what the backend itself does with the participant's events (a round into
// the history, the data report, the device the trainer started on) before the page hears them.
import type { SerializedIdentity } from '@fedit/shared';
import type { RoundHistoryEntry } from '../core/federation/index.ts';
import type { AppSettings, ParticipantEvent } from './api.ts';
import type { AppLog } from './app-log.ts';
import type { BackgroundWork } from './background.ts';
import type { TrainingDevice } from './device.ts';
import { endedSentence } from './federation-end.ts';
import { describeRound } from './federation-summary.ts';
import type { FederationMembership } from './membership.ts';
import type { PageFeed } from './page-feed.ts';
import type { Selections } from './selections.ts';
import type { SupervisorHost } from './worker-supervisor.ts';
import type { RunOptions, WorkerLink } from './worker-protocol.ts';

/** The backend's parts and state that taking part reads, and what it asks the backend to do. */
export interface TakingPartParts {
  home: string;
  log: AppLog;
  worker: WorkerLink;
  page: PageFeed;
  background: BackgroundWork;
  federation: FederationMembership;
  selections: Selections;
  device: TrainingDevice;
  settings(): AppSettings;
  /** The WebGPU probe started when the backend opened ('auto' needs to know whether there is a GPU). */
  gpuProbe(): Promise<void>;
  /** The identity's fingerprint, once created. */
  identity(): string | undefined;
  /** The opened identity the worker is handed when identity.json is sealed (app-identity.ts). */
  workerIdentity(): SerializedIdentity | undefined;
  /** The state changed: send it to the page. */
  changed(): void;
  saveSettings(): Promise<void>;
  /** Where training runs changed: show it in the status. */
  showDevice(): void;
}

/** What the worker supervisor asks the backend, and tells it. */
export function supervisorHost(parts: TakingPartParts): SupervisorHost {
  return {
    runOptions: async () => {
      await parts.gpuProbe();
      await chooseDevice(parts);
      return runOptions(parts) ?? readyProblem(parts) ?? 'cannot start';
    },
    limits: () => parts.settings(),
    status: () => parts.page.status,
    rounds: () => parts.federation.settings?.rounds,
    onFederationEnded: async (final) => {
      const end = await parts.federation.recordEnd(final);
      parts.changed();
      return endedSentence(end);
    },
    onStatus: (event) => parts.page.app(event),
    onParticipant: (event) => onParticipant(parts, event),
    onChanged: () =>
      parts.background.run(
        parts.saveSettings().then(() => parts.changed()),
        'cannot save the settings',
      ),
  };
}

/** What the participant runs with now; undefined while something is missing (readyProblem). */
export function runOptions(parts: TakingPartParts): RunOptions | undefined {
  const { federation, selections } = parts;
  const model = selections.model(federation.settings);
  const data = selections.data;
  const membership = federation.current;
  if (!membership || !model?.ok || !data) return undefined;
  const settings = parts.settings();
  return {
    home: parts.home,
    federationId: membership.federation,
    modelDir: model.dir,
    dataFiles: data.files,
    provider: parts.device.asked(settings.device),
    threads: settings.maxThreads,
    ...withIdentity(parts.workerIdentity()),
  };
}

/** The identity field of a worker message: present only when the worker needs it (sealed file). */
export function withIdentity(identity: SerializedIdentity | undefined): { identity?: SerializedIdentity } {
  return identity ? { identity } : {};
}

/** What is missing before training can start, in words; undefined when nothing is. */
export function readyProblem(parts: TakingPartParts): string | undefined {
  if (!parts.identity()) return 'create your identity first';
  if (!parts.federation.current) return 'join a federation first: paste the invite you were sent';
  return parts.selections.problem(parts.federation.settings);
}

/** Automatic: a few real steps on each provider decide, once per model, data and settings. */
async function chooseDevice(parts: TakingPartParts): Promise<void> {
  const [run, settings] = [runOptions(parts), parts.federation.settings];
  if (parts.settings().device !== 'auto' || !run || !settings) return;
  await parts.device.chooseFor(run, settings, (job) => parts.worker.request(job), parts.log);
  parts.showDevice();
  parts.changed();
}

/** What the backend itself does with the participant's events, before the status folds them. */
function onParticipant(parts: TakingPartParts, event: ParticipantEvent): void {
  switch (event.type) {
    case 'round':
      parts.background.run(recordRound(parts, event.data), 'cannot save the round history');
      break;
    case 'report':
      parts.selections.setReport(event.data);
      break;
    case 'device':
      parts.device.trainerStarted(parts.settings().device, event.data, parts.log);
      break;
  }
  parts.page.participant(event);
}

async function recordRound(parts: TakingPartParts, entry: RoundHistoryEntry): Promise<void> {
  await parts.federation.history.record(entry);
  parts.log.info(`round ${entry.round}: ${describeRound(entry)}`);
  parts.changed();
}
