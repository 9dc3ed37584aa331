// The real `fedit` command as an operator runs it (a process started from the repository root):
// one-shot commands, and `fedit coordinator start` as a child process a test can SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { repoRoot } from '../../../test/fixtures/fedit-cli.ts';
import { WAIT_LIMIT_MS, withinLimit } from './federation.ts';

export { fedit, repoRoot, type Run } from '../../../test/fixtures/fedit-cli.ts';
const ENTRY = ['--conditions=source', '--import', 'tsx'];
const FEDIT = 'client-app/src/cli/fedit.ts';

/** A port nothing listens on right now (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** `fedit coordinator start DIR --port PORT` running as a child process. */
export class CoordinatorProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: (() => void)[] = [];

  /** `preload`: modules loaded before the command (test hooks), `env`: extra environment. */
  constructor(dir: string, port: number, options: { preload?: string[]; env?: NodeJS.ProcessEnv } = {}) {
    const imports = (options.preload ?? []).flatMap((m) => ['--import', m]);
    this.child = spawn(
      process.execPath,
      [...ENTRY, ...imports, FEDIT, 'coordinator', 'start', dir, '--port', String(port)],
      { cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
      this.#waiters.splice(0).forEach((f) => f());
    });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
      this.#waiters.splice(0).forEach((f) => f());
    });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': 'exit' can come before the last stdout chunk has been read, and a
      // test that reads what the process printed before it died would miss it.
      this.child.once('close', (code, signal) => {
        resolve({ code, signal });
        this.#waiters.splice(0).forEach((f) => f());
      });
    });
  }

  /** The first stdout line matching `pattern` (already printed or to come). */
  line(pattern: RegExp, ms = WAIT_LIMIT_MS): Promise<string> {
    return withinLimit(
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const found = this.stdout.split('\n').find((l) => pattern.test(l));
          if (found !== undefined) resolve(found);
          else if (this.child.exitCode !== null || this.child.signalCode !== null)
            reject(
              new Error(`the coordinator exited before printing ${pattern}:\n${this.stdout}\n${this.stderr}`),
            );
          else this.#waiters.push(check);
        };
        check();
      }),
      () => `${pattern} from the coordinator; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
      ms,
    );
  }

  /** kill -9, and wait until the process is gone (reaped). */
  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
