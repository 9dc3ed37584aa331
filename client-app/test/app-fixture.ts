// What the desktop app's tests stand on: a tiny model (a real tokenizer.json, random weights) and
// a second one that is not the federation's, a data file with a few bad rows, a real coordinator
// on loopback with an invite, and a fresh app home. Nothing is downloaded.

import type { ExecutionContext } from 'ava';
import { EventRecorder, FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createInvite,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
  type RunningCoordinator,
} from '@fedit/coordinator';
import type { AppBackend } from '../src/app/backend.ts';
import type { AppState } from '../src/app/api.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';

export { FACTS };

export async function tempDir(t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function writeTinyModel(dir: string, seed: number): Promise<string> {
  return writeTinyChatModel(join(dir, `model-${seed}`), seed);
}

/**
 * Chat-format facts with three bad rows, at lines 3 (not JSON), 6 (no assistant turn) and 9 (an
 * empty answer).
 */
export async function writeDataWithBadRows(dir: string): Promise<string> {
  const path = join(dir, 'facts.jsonl');
  const lines = FACTS.map(([q, a]) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `The ${q}?` },
        { role: 'assistant', content: a },
      ],
    }),
  );
  lines.splice(2, 0, '{"messages": [ this is not json');
  lines.splice(5, 0, JSON.stringify({ messages: [{ role: 'user', content: 'a question and no answer' }] }));
  lines.splice(
    8,
    0,
    JSON.stringify({
      messages: [
        { role: 'user', content: 'an empty answer' },
        { role: 'assistant', content: '   ' },
      ],
    }),
  );
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

export const TEST_TRAINING: FederationSettings['training'] = {
  localSteps: 30,
  batchSize: 4,
  lr: 2e-2,
  cutoffLen: 64,
  template: 'chat',
  trainOnInputs: false,
};

export interface TestFederation {
  dir: string;
  modelDir: string;
  coordinator: RunningCoordinator;
  events: CoordinatorEvent[];
  invite(): string;
  waitFor(predicate: (e: CoordinatorEvent) => boolean): Promise<CoordinatorEvent>;
}

/** A federation on the tiny model that one participant can run alone, and its coordinator. */
export async function startTestFederation(
  t: ExecutionContext,
  dir: string,
  settings: Partial<FederationSettings> = {},
): Promise<TestFederation> {
  const modelDir = await writeTinyModel(dir, 0);
  const fedDir = join(dir, 'federation');
  await initFederationFromModel(fedDir, {
    modelDir,
    modelName: 'tiny-test',
    seed: 1,
    settings: {
      name: 'app test federation',
      // Enough for the tiny model to learn the facts in two rounds (a second or two on a CPU), so
      // the chat can show that the global adapter is the one answering.
      lora: {
        rank: 8,
        alpha: 16,
        dropout: 0,
        targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      },
      training: TEST_TRAINING,
      rounds: 2,
      participantsPerRound: { fraction: 1, minimum: 1 },
      minUpdates: 1,
      roundDeadlineSeconds: 120,
      ...settings,
    },
  });
  const recorder = new EventRecorder<CoordinatorEvent>();
  const coordinator = await startCoordinator({
    dir: fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: recorder.record,
  });
  t.teardown(() => coordinator.close());
  return {
    dir: fedDir,
    modelDir,
    coordinator,
    events: recorder.events,
    invite: () => createInvite(fedDir, { url: coordinator.url }),
    waitFor: (predicate) => recorder.next(predicate),
  };
}

/**
 * A participant ready to take part in `fed`, through the backend's API: identity created, invite
 * read and joined, the federation's model and `data` chosen (app-ui.test.ts clicks through these
 * steps in the page; tests that start from a joined participant do them here).
 */
export async function joinAndChoose(
  backend: AppBackend,
  fed: TestFederation,
  data: string,
): Promise<AppState> {
  await backend.createIdentity();
  const invite = fed.invite();
  await backend.inspectInvite(invite);
  await backend.joinFederation(invite);
  await backend.chooseModel(fed.modelDir);
  return backend.chooseData([data]);
}
