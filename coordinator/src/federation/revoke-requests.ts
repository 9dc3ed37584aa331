// Revocation requests to a running coordinator. The round log has one writer (lock.ts), so while
// a coordinator runs, `fedit coordinator revoke` does not append the record itself: it writes a
// request into the folder's requests/ (owner-only, as everything that can change the federation)
// and waits for the coordinator's answer beside it. The coordinator notices the request (fs.watch,
// and a poll in case the file system gives no events), appends the revoke record, and writes
// the answer: the record's sequence number, or the refusal's code and message.
//
//   requests/revoke-<id>.json          { participant, reason }               the command writes it
//   requests/revoke-<id>.claimed       the coordinator renames it so on taking it up
//   requests/revoke-<id>.answer.json   { seq } | { error: { code, message } }   the coordinator
//
// A command that stops waiting withdraws its request by removing it; once claimed it can no
// longer be withdrawn, and the command says so. Anyone who can write into the folder can already
// sign records with its keys: the requests add no power.

import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FeditError, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '@fedit/shared';

export const REQUESTS_DIR = 'requests';
/** How often the coordinator looks for requests when fs.watch is silent, and the command for answers. */
export const REQUEST_POLL_MS = 500;

export interface RevokeRequest {
  participant: string;
  reason: string;
}

export type RevokeAnswer = { seq: number } | { error: { code: string; message: string } };

const REQUEST_FILE = /^revoke-([0-9a-f]{16})\.json$/;

function requestsDir(root: string): string {
  const dir = join(root, REQUESTS_DIR);
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  return dir;
}

/** Writes a request and waits up to `waitMs` for the coordinator's answer. */
export async function requestRevocation(
  root: string,
  request: RevokeRequest,
  waitMs: number,
): Promise<RevokeAnswer> {
  const dir = requestsDir(root);
  const id = randomBytes(8).toString('hex');
  const path = join(dir, `revoke-${id}.json`);
  const answerPath = join(dir, `revoke-${id}.answer.json`);
  const temporary = join(dir, `.revoke-${id}.tmp`);
  writeFileSync(temporary, JSON.stringify(request) + '\n', { mode: PRIVATE_FILE_MODE, flag: 'wx' });
  renameSync(temporary, path); // whole, or not there: the coordinator never reads half a request
  const due = Date.now() + waitMs;
  while (Date.now() < due) {
    if (existsSync(answerPath)) {
      const answer = JSON.parse(readFileSync(answerPath, 'utf8')) as RevokeAnswer;
      rmSync(answerPath, { force: true });
      return answer;
    }
    await new Promise((r) => setTimeout(r, Math.min(REQUEST_POLL_MS / 5, Math.max(0, due - Date.now()))));
  }
  try {
    rmSync(path); // not taken up: withdrawn
    throw new FeditError(
      'REVOKE_TIMEOUT',
      `the running coordinator did not take up the revocation within ${Math.ceil(waitMs / 1000)} s; the request is withdrawn, nothing was recorded`,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new FeditError(
      'REVOKE_PENDING',
      `the running coordinator took up the revocation but did not answer within ${Math.ceil(waitMs / 1000)} s; see fedit coordinator participants for whether it is recorded`,
    );
  }
}

/**
 * Calls `handle` for each request written into `root`'s requests/ (those already there first),
 * one at a time, and writes its answer. Returns a function that stops watching.
 */
export function watchRevocationRequests(
  root: string,
  handle: (request: RevokeRequest) => Promise<RevokeAnswer>,
): () => void {
  const dir = requestsDir(root);
  let busy = false;
  let again = false;
  const scan = async (): Promise<void> => {
    if (busy) {
      again = true; // a request arrived while one was handled: look once more after it
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        for (const name of readdirSync(dir).sort()) {
          const match = REQUEST_FILE.exec(name);
          if (match) await take(dir, match[1], handle);
        }
      } while (again);
    } finally {
      busy = false;
    }
  };
  const kick = () =>
    void scan().catch((err: unknown) => console.error('fedit coordinator: revocation request failed:', err));
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    watcher = watch(dir, kick);
    watcher.on('error', () => undefined); // the poll below goes on
  } catch {
    watcher = undefined; // no events on this file system: the poll alone
  }
  const poll = setInterval(kick, REQUEST_POLL_MS);
  poll.unref();
  kick();
  return () => {
    clearInterval(poll);
    watcher?.close();
  };
}

async function take(
  dir: string,
  id: string,
  handle: (r: RevokeRequest) => Promise<RevokeAnswer>,
): Promise<void> {
  const claimed = join(dir, `revoke-${id}.claimed`);
  try {
    renameSync(join(dir, `revoke-${id}.json`), claimed);
  } catch {
    return; // withdrawn meanwhile
  }
  let answer: RevokeAnswer;
  try {
    const value = JSON.parse(readFileSync(claimed, 'utf8')) as Partial<RevokeRequest>;
    if (typeof value.participant !== 'string' || typeof value.reason !== 'string')
      throw new FeditError('REVOKE_REQUEST', 'the request names no participant or reason');
    answer = await handle({ participant: value.participant, reason: value.reason });
  } catch (err) {
    const code = err instanceof FeditError ? err.code : 'INTERNAL';
    answer = { error: { code, message: (err as Error).message } };
  }
  const temporary = join(dir, `.revoke-${id}.answer.tmp`);
  writeFileSync(temporary, JSON.stringify(answer) + '\n', { mode: PRIVATE_FILE_MODE });
  renameSync(temporary, join(dir, `revoke-${id}.answer.json`));
  rmSync(claimed, { force: true });
}
