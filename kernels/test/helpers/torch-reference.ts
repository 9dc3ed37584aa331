// Runs ../shared/bench/torch_lora_reference.py (the PyTorch reference) when python3 with torch is
// installed; tests that need it are skipped with a message saying why otherwise.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const REFERENCE_SCRIPT =
  process.env.FEDIT_TORCH_REFERENCE ?? join(repoRoot, '../shared/bench/torch_lora_reference.py');

function findTorchPython(): string | undefined {
  // Debian's python3-torch lives under /usr/bin/python3, which a pyenv or venv python3 on PATH may hide.
  const candidates = [process.env.FEDIT_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter(
    Boolean,
  ) as string[];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

export const torchPython = findTorchPython();

/** Why the reference cannot run here, or undefined when it can. */
export const referenceUnavailable: string | undefined = !existsSync(REFERENCE_SCRIPT)
  ? `the PyTorch reference script is not at ${REFERENCE_SCRIPT}`
  : !torchPython
    ? 'no python3 with torch (install Debian packages python3-torch and libopenblas0-pthread, as .ci/run does)'
    : undefined;

export function runReference(args: string[], timeoutMs = 600_000): string {
  if (!torchPython) throw new Error(referenceUnavailable);
  return execFileSync(torchPython, [REFERENCE_SCRIPT, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 1 << 30,
  });
}
