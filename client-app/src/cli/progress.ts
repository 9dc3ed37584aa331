// A progress line for long jobs: steps, loss, tokens/s and ETA. On a terminal it redraws one line;
// elsewhere (logs, CI) it prints a line every `every` steps so output stays readable.

export interface ProgressSnapshot {
  step: number;
  totalSteps: number;
  loss: number;
  tokensPerSecond: number;
  etaSeconds: number;
  note?: string;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(r).padStart(2, '0')}s`
      : `${r}s`;
}

export function progressLine(p: ProgressSnapshot, width = 24): string {
  const frac = p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : 0;
  const filled = Math.round(frac * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  return `[${bar}] step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  ${p.tokensPerSecond.toFixed(0)} tok/s  ETA ${formatDuration(p.etaSeconds)}${p.note ? `  ${p.note}` : ''}`;
}

export class ProgressPrinter {
  private lastLength = 0;
  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly every = 10,
  ) {}

  update(p: ProgressSnapshot): void {
    const line = progressLine(p);
    if (this.out.isTTY) {
      this.out.write(`\r${line.padEnd(this.lastLength)}`);
      this.lastLength = line.length;
    } else if (p.step === 1 || p.step % this.every === 0 || p.step === p.totalSteps) {
      this.out.write(line + '\n');
    }
  }

  done(message: string): void {
    if (this.out.isTTY && this.lastLength > 0) this.out.write('\n');
    this.lastLength = 0;
    this.out.write(message + '\n');
  }
}

/**
 * Ctrl-C handling for long jobs: the first press aborts the returned signal (the job stops cleanly
 * and keeps what it must), a second press quits at once. Call the returned `dispose` when done.
 */
export function stopOnCtrlC(message: string): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\n${message} (Ctrl-C again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}
