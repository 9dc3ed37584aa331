// Locates the PyTorch reference (../shared/bench/torch_lora_reference.py beside the repository) and
// a python3 that has torch; wraps it so its peak RSS is reported too.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const REFERENCE_SCRIPT =
  process.env.FEDIT_TORCH_REFERENCE ?? join(repoRoot, '../shared/bench/torch_lora_reference.py');

export function findTorchPython(): string | undefined {
  // Debian's python3-torch is under /usr/bin/python3, which a pyenv or venv python3 on PATH may hide.
  const candidates = [process.env.FEDIT_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter(
    Boolean,
  ) as string[];
  return candidates.find((py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
}

/** Why the reference cannot run here, or undefined when it can. */
export function referenceUnavailable(): string | undefined {
  if (!existsSync(REFERENCE_SCRIPT)) return `the PyTorch reference script is not at ${REFERENCE_SCRIPT}`;
  if (!findTorchPython())
    return 'no python3 with torch (Debian: python3-torch and libopenblas0-pthread, as .ci/run installs)';
  return undefined;
}

/** python + args that run the reference script and print {"maxrss_kb": N} on stderr at exit. */
export function referenceCommand(): { python: string; args: string[] } | undefined {
  const python = findTorchPython();
  if (!python || !existsSync(REFERENCE_SCRIPT)) return undefined;
  const wrapper = [
    'import json, resource, runpy, sys',
    'script = sys.argv[1]; sys.argv = sys.argv[1:]',
    'try:',
    "    runpy.run_path(script, run_name='__main__')",
    'finally:',
    "    print(json.dumps({'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)",
  ].join('\n');
  return { python, args: ['-c', wrapper, REFERENCE_SCRIPT] };
}
