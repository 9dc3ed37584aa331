// A benchmark process (coordinator-worker.ts or participant-worker.ts, next to this file) run as a
// child of the benchmark, which prints one JSON line per event on stdout; anything else it prints
// goes to stderr, named. `next(type)` waits for a line of that type, or fails if the child exits
// before printing one.

import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export class Child<L extends { type: string }> {
  readonly lines: L[] = [];
  readonly exited: Promise<number>;
  #waiters: { type: string; resolve: (l: L) => void; reject: (e: Error) => void }[] = [];
  #exitCode: number | undefined;

  constructor(
    readonly name: string,
    script: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
    nice = 0,
    nodeArgs: string[] = [],
  ) {
    const proc = spawn(process.execPath, [...process.execArgv, ...nodeArgs, join(here, script), ...args], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (nice && proc.pid) setPriority(proc.pid, nice);
    createInterface({ input: proc.stdout }).on('line', (text) => {
      let line: L;
      try {
        line = JSON.parse(text) as L;
      } catch {
        process.stderr.write(`${name}: ${text}\n`);
        return;
      }
      this.lines.push(line);
      this.#waiters = this.#waiters.filter((w) => (w.type === line.type ? (w.resolve(line), false) : true));
    });
    this.exited = new Promise((resolve) =>
      proc.on('exit', (code, signal) => {
        this.#exitCode = code ?? (signal ? 128 : 1);
        for (const w of this.#waiters)
          w.reject(new Error(`${name} exited (${code ?? signal}) before printing '${w.type}'`));
        this.#waiters = [];
        resolve(this.#exitCode);
      }),
    );
    this.kill = () => proc.kill();
  }

  readonly kill: () => void;

  /** The first line of `type` (already printed or to come); rejects if the process exits first. */
  next<T extends L['type']>(type: T): Promise<Extract<L, { type: T }>> {
    const seen = this.lines.find((l) => l.type === type);
    if (seen) return Promise.resolve(seen as Extract<L, { type: T }>);
    if (this.#exitCode !== undefined)
      return Promise.reject(new Error(`${this.name} exited (${this.#exitCode}) before printing '${type}'`));
    return new Promise((resolve, reject) =>
      this.#waiters.push({ type, resolve: resolve as (l: L) => void, reject }),
    );
  }
}
