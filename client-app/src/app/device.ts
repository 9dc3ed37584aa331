// Where training can run: whether ONNX Runtime's WebGPU execution provider starts on this machine
// (a GPU, or software Vulkan such as Mesa lavapipe >= 25), probed once per app run.
//
// The probe runs a one-node graph (y = x + x) with CPU fallback forbidden, in a child process: a
// broken Vulkan or Dawn setup may abort the process instead of throwing, and must take neither the
// app nor its training worker with it. Same probe as kernels/test/helpers/webgpu.ts.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoraTarget } from '@fedit/kernels';
import type { AppSettings } from './api.ts';
import type { AppLog } from './app-log.ts';
import type { FederationSettings } from '../core/federation/settings.ts';
import type { DeviceMeasurement, Job, RunOptions } from './worker-protocol.ts';

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
  /**
   * The adapter WebGPU starts on is a software rasteriser (lavapipe, llvmpipe, SwiftShader, WARP):
   * it runs on the CPU, and is never shown as a GPU. Absent when it cannot be told.
   */
  software?: boolean;
}

/**
 * Names that adapters of software rasterisers carry in their adapter info (vendor, architecture,
 * device, description): Mesa's lavapipe and llvmpipe, Google's SwiftShader, Microsoft's WARP.
 */
const SOFTWARE_ADAPTER = /lavapipe|llvmpipe|swiftshader|software rasteri[sz]er|microsoft basic render/i;

/** Whether a WebGPU adapter is a software one, from its GPUAdapterInfo and isFallbackAdapter. */
export function isSoftwareAdapter(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some(
    (text) => text !== undefined && SOFTWARE_ADAPTER.test(text),
  );
}

/**
 * Linux only: whether this machine has a graphics device at all (a DRM card, or a display
 * controller, PCI class 0x03, on its bus). ONNX Runtime does not say which adapter Dawn picked;
 * on a machine with no graphics device the adapter WebGPU started on can only be a software one
 * (lavapipe), whatever its Vulkan driver is called. Undefined elsewhere, or when sysfs is not there.
 */
export function linuxHasGraphicsDevice(sys = '/sys', platform = process.platform): boolean | undefined {
  if (platform !== 'linux' || !existsSync(join(sys, 'bus/pci/devices'))) return undefined;
  const drm = existsSync(join(sys, 'class/drm')) ? readdirSync(join(sys, 'class/drm')) : [];
  if (drm.some((name) => /^card\d+$/.test(name))) return true;
  return readdirSync(join(sys, 'bus/pci/devices')).some((device) => {
    try {
      return readFileSync(join(sys, 'bus/pci/devices', device, 'class'), 'utf8')
        .trim()
        .startsWith('0x03');
    } catch {
      return false;
    }
  });
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
      if (out.includes('result 2,4')) {
        const hardware = linuxHasGraphicsDevice();
        return resolve(
          hardware === undefined ? { available: true } : { available: true, software: !hardware },
        );
      }
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

/** Steps Automatic runs on each provider; all but the first (which compiles) are timed. */
export const MEASURED_STEPS = 4;

/** The measurement of `run`'s training under the federation's `settings`, on a provider to name. */
export type MeasureJob = Extract<Job, { kind: 'measure-device' }>;

export function measureJob(
  run: Pick<RunOptions, 'modelDir' | 'dataFiles' | 'threads'>,
  settings: FederationSettings,
): Omit<MeasureJob, 'provider'> {
  const { lora, training } = settings;
  return {
    kind: 'measure-device',
    modelDir: run.modelDir,
    dataFiles: [...run.dataFiles],
    // The federation's settings were checked against the kernels' targets when they were read.
    lora: {
      rank: lora.rank,
      alpha: lora.alpha,
      dropout: lora.dropout,
      targets: [...lora.targets] as LoraTarget[],
    },
    training: {
      template: training.template,
      cutoffLen: training.cutoffLen,
      trainOnInputs: training.trainOnInputs ?? false,
      batchSize: training.batchSize ?? 1,
    },
    threads: run.threads,
    steps: MEASURED_STEPS,
  };
}

/** How much faster (seconds per step) WebGPU must be than the CPU for Automatic to pick it. */
export const GPU_MARGIN = 1.1;

/** What Automatic picked, and why, in words the page shows. */
export interface DeviceChoice {
  device: 'cpu' | 'webgpu';
  why: string;
  /** Seconds per training step measured on each provider (absent: not measured). */
  measured?: { cpu: number; webgpu?: number };
}

const seconds = (s: number): string => `${s < 0.1 ? s.toFixed(3) : s.toFixed(2)} s`;

/**
 * Automatic's choice from a few real steps on each provider: WebGPU only when it started there and
 * was at least GPU_MARGIN times faster than the CPU (a tie keeps the CPU, which leaves the computer's
 * graphics alone); a WebGPU that failed or fell back to the CPU is not chosen.
 */
export function chooseDevice(
  cpu: DeviceMeasurement,
  gpu: DeviceMeasurement | { error: string },
  software: boolean | undefined,
): DeviceChoice {
  const kind = software ? 'WebGPU (a software rasteriser, which runs on the CPU)' : 'WebGPU';
  if ('error' in gpu) {
    return {
      device: 'cpu',
      why: `${kind} could not train here (${gpu.error}); training runs on the CPU (${seconds(cpu.secondsPerStep)} a step).`,
      measured: { cpu: cpu.secondsPerStep },
    };
  }
  const measured = { cpu: cpu.secondsPerStep, webgpu: gpu.secondsPerStep };
  if (gpu.startedOn !== 'webgpu') {
    return {
      device: 'cpu',
      why: `${kind} fell back to the CPU on a training step; training runs on the CPU.`,
      measured,
    };
  }
  const times = `${kind} took ${seconds(gpu.secondsPerStep)} a step, the CPU ${seconds(cpu.secondsPerStep)} (${gpu.steps} steps each)`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
  if (gpu.secondsPerStep * GPU_MARGIN < cpu.secondsPerStep) {
    return {
      device: 'webgpu',
      why: `${times}: training runs on WebGPU, ${ratio(cpu.secondsPerStep, gpu.secondsPerStep)} faster.`,
      measured,
    };
  }
  const faster =
    gpu.secondsPerStep > cpu.secondsPerStep
      ? `, ${ratio(gpu.secondsPerStep, cpu.secondsPerStep)} faster`
      : ', as fast or faster';
  return { device: 'cpu', why: `${times}: training runs on the CPU${faster}.`, measured };
}

/**
 * Which provider training is asked to use (the setting, whether there is a GPU, and for Automatic
 * what a few measured steps showed), and which the status shows: what the trainer last reported it
 * started on, while the provider asked for is still the same (a GPU that failed on the real graph
 * fails again).
 */
export class TrainingDevice {
  gpuAvailable = false;
  /** WebGPU starts on a software rasteriser here (./device.ts ProbeResult.software). */
  gpuSoftware: boolean | undefined;
  #trainedOn: { asked: 'cpu' | 'webgpu'; used: 'cpu' | 'webgpu' } | undefined;
  #choice: { key: string; choice: DeviceChoice } | undefined;

  /** Finds out whether WebGPU runs here with `probe`; a probe that fails counts as no. */
  async probe(probe: () => Promise<boolean | ProbeResult>, log: AppLog): Promise<void> {
    try {
      const found = await probe();
      const result = typeof found === 'boolean' ? { available: found } : found;
      this.gpuAvailable = result.available;
      this.gpuSoftware = result.available ? result.software : undefined;
      const what = this.gpuSoftware ? ', on a software rasteriser (it runs on the CPU)' : '';
      log.info(`WebGPU ${this.gpuAvailable ? `is available${what}` : 'is not available'} on this machine`);
    } catch (error) {
      log.warn(`the WebGPU probe failed: ${(error as Error).message}`);
    }
  }

  /** Automatic's choice, when it has made one. */
  get choice(): DeviceChoice | undefined {
    return this.#choice?.choice;
  }

  /**
   * Automatic's choice for `run` under the federation's `settings`: the one made before for the same
   * model, data and settings, else measured now (a few steps on each provider, as jobs of the
   * training worker sent through `request`).
   */
  async chooseFor(
    run: RunOptions,
    settings: FederationSettings,
    request: (job: MeasureJob) => Promise<DeviceMeasurement>,
    log: AppLog,
  ): Promise<DeviceChoice> {
    const job = measureJob(run, settings);
    const key = JSON.stringify(job);
    if (this.#choice?.key === key) return this.#choice.choice;
    const measure = (provider: 'cpu' | 'webgpu') => request({ ...job, provider });
    let choice: DeviceChoice;
    if (!this.gpuAvailable) {
      choice = { device: 'cpu', why: 'WebGPU cannot start on this computer: training runs on the CPU.' };
    } else {
      const cpu = await measure('cpu');
      const gpu = await measure('webgpu').catch((error: unknown) => ({ error: (error as Error).message }));
      choice = chooseDevice(cpu, gpu, this.gpuSoftware);
    }
    log.info(`device Automatic: ${choice.why}`);
    this.#choice = { key, choice };
    return choice;
  }

  asked(setting: AppSettings['device']): 'cpu' | 'webgpu' {
    if (setting === 'cpu') return 'cpu';
    if (setting === 'webgpu') return this.gpuAvailable ? 'webgpu' : 'cpu';
    // Automatic: what the measured steps chose; before it measured, the CPU (always there).
    return this.#choice?.choice.device ?? 'cpu';
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
