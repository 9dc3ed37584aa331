// Where training can run: whether ONNX Runtime's WebGPU execution provider starts on this machine
// (a GPU, or software Vulkan such as Mesa lavapipe >= 25), probed once per app run.
//
// The probe runs a one-node graph (y = x + x) with CPU fallback forbidden, in a child process: a
// broken Vulkan or Dawn setup may abort the process instead of throwing, and must take neither the
// app nor its training worker with it. Same probe as kernels/test/helpers/webgpu.ts.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { AppSettings } from './api.ts';
import type { AppLog } from './app-log.ts';

/** The ONNX bytes of `y = x + x` for float32[2] (kernels' serializeModel of a Graph with one Add). */
const PROBE_MODEL =
  'CAgSBWZlZGl0QgQKABASOmkKFwoBeAoBeBIDYWRkGgVBZGRfMCIDQWRkCh4KA2FkZBIBeRoKSWRlbnRpdHlfMSIISWRlbnRpdHkSDHdlYmdwdV9wcm9iZVoPCgF4EgoKCAgBEgQKAggCYg8KAXkSCgoICAESBAoCCAI=';

const PROBE_SCRIPT = `
const ort = await import(process.argv[1]);
const session = await ort.InferenceSession.create(Buffer.from(process.argv[2], 'base64'), {
  executionProviders: ['webgpu'],
  logSeverityLevel: 3,
  extra: { session: { disable_cpu_ep_fallback: '1' } },
});
const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
process.stdout.write('result ' + Array.from(out.y.data).join(','));
`;

export interface ProbeResult {
  available: boolean;
  /** Why not, in words, when not. */
  reason?: string;
}

/**
 * Whether WebGPU training can start here. FEDIT_SKIP_WEBGPU=1 answers no without probing (for
 * machines where even trying is unwelcome). `execPath` is the Node (or Electron, run as Node)
 * binary the probe runs in.
 */
export function probeWebGpu(
  options: { execPath?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ProbeResult> {
  const env = options.env ?? process.env;
  if (env.FEDIT_SKIP_WEBGPU === '1')
    return Promise.resolve({ available: false, reason: 'FEDIT_SKIP_WEBGPU=1' });
  let ortUrl: string;
  try {
    ortUrl = pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href;
  } catch (error) {
    return Promise.resolve({
      available: false,
      reason: `onnxruntime-node not found: ${(error as Error).message}`,
    });
  }
  return new Promise((resolve) => {
    const child = spawn(
      options.execPath ?? process.execPath,
      ['--input-type=module', '-e', PROBE_SCRIPT, ortUrl, PROBE_MODEL],
      { env: { ...env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ available: false, reason: error.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (out.includes('result 2,4')) return resolve({ available: true });
      const line =
        out
          .split('\n')
          .map((l) => l.trim())
          .find((l) => /adapter|vulkan|webgpu|backend|error/i.test(l)) ??
        (signal ? `probe killed by ${signal}` : `probe exited with ${code}`);
      resolve({ available: false, reason: line.slice(0, 300) });
    });
  });
}

/**
 * Which provider training is asked to use (the setting, and whether there is a GPU), and which the
 * status shows: what the trainer last reported it started on, while the provider asked for is
 * still the same (a GPU that failed on the real graph fails again).
 */
export class TrainingDevice {
  gpuAvailable = false;
  #trainedOn: { asked: 'cpu' | 'webgpu'; used: 'cpu' | 'webgpu' } | undefined;

  /** Finds out whether WebGPU runs here with `probe`; a probe that fails counts as no. */
  async probe(probe: () => Promise<boolean>, log: AppLog): Promise<void> {
    try {
      this.gpuAvailable = await probe();
      log.info(`WebGPU ${this.gpuAvailable ? 'is available' : 'is not available'} on this machine`);
    } catch (error) {
      log.warn(`the WebGPU probe failed: ${(error as Error).message}`);
    }
  }

  asked(setting: AppSettings['device']): 'cpu' | 'webgpu' {
    if (setting === 'cpu') return 'cpu';
    return this.gpuAvailable ? 'webgpu' : 'cpu';
  }

  shown(setting: AppSettings['device']): 'cpu' | 'webgpu' {
    const trained = this.#trainedOn;
    const asked = this.asked(setting);
    return trained?.asked === asked ? trained.used : asked;
  }

  /** The trainer started on `provider`: shown from now on, and in the log if it was not the one asked for. */
  trainerStarted(setting: AppSettings['device'], provider: string, log: AppLog): void {
    const trainedOn = { asked: this.asked(setting), used: provider === 'webgpu' ? 'webgpu' : 'cpu' } as const;
    this.#trainedOn = trainedOn;
    if (trainedOn.asked !== trainedOn.used) {
      log.warn(`training was asked to run on ${trainedOn.asked} but runs on ${trainedOn.used}`);
    }
  }
}
