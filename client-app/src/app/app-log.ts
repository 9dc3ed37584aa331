// The app's log: plain text lines a participant can open (Settings -> Show logs) and send to the
// operator when something goes wrong. It records what the app did and why it stopped (statuses,
// rounds, warnings, errors, worker crashes), never the content of the data or of chats. Paths in
// it are shortened: the user's home folder is written `~` (it usually holds the person's name),
// and the backend names data files by their file name alone.
//
//   <logs>/app.log     the current log
//   <logs>/app.1.log   the previous one (the log is rotated at ROTATE_BYTES)

import { appendFile, mkdir, open, rename, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

const ROTATE_BYTES = 1024 * 1024;

export type LogLevel = 'info' | 'warn' | 'error';

export class AppLog {
  readonly dir: string;
  readonly file: string;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #home: string;

  /** `home`: the folder written `~` (default: the user's home folder). */
  constructor(dir: string, options: { home?: string } = {}) {
    this.dir = dir;
    this.file = join(dir, 'app.log');
    this.#home = (options.home ?? homedir()).replace(/[\\/]+$/, '');
  }

  /** `message` with the home folder written `~`. */
  redact(message: string): string {
    // A root or empty home would turn every path into ~: nothing to hide there.
    if (this.#home.length < 2) return message;
    // Only the whole folder name: /home/ann, not the start of /home/anna.
    const escaped = this.#home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return message.replace(new RegExp(`${escaped}(?![\\w.-])`, 'g'), '~');
  }

  info(message: string): void {
    this.write('info', message);
  }
  warn(message: string): void {
    this.write('warn', message);
  }
  error(message: string): void {
    this.write('error', message);
  }

  write(level: LogLevel, message: string): void {
    if (this.#closed) return;
    const line = `${new Date().toISOString()} ${level.padEnd(5)} ${this.redact(message).replace(/\s*\n\s*/g, ' ')}\n`;
    this.#queue = this.#queue
      .then(async () => {
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const size = (await stat(this.file).catch(() => undefined))?.size ?? 0;
        if (size > ROTATE_BYTES) await rename(this.file, join(this.dir, 'app.1.log'));
        await appendFile(this.file, line, { mode: 0o600 });
      })
      .catch(() => undefined); // a full disk must not stop the app; the log is best effort
  }

  /** Writes what is queued; later lines are dropped (the app is gone, its folder may be too). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
  }

  /** Waits for the lines written so far. */
  flush(): Promise<void> {
    return this.#queue;
  }

  /** The last `maxBytes` of the log (from a line start). */
  async tail(maxBytes = 64 * 1024): Promise<string> {
    await this.flush();
    let handle;
    try {
      handle = await open(this.file, 'r');
    } catch {
      return '';
    }
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - maxBytes);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      const text = buffer.toString('utf8');
      return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
    } finally {
      await handle.close();
    }
  }
}
