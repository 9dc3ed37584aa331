// Where "Automatic" trains (src/app/device.ts): a software WebGPU adapter (lavapipe, llvmpipe,
// SwiftShader, WARP) is never a GPU, and Automatic picks the provider that is measurably faster on
// a few real training steps, saying which and why. The rule on made-up timings, the adapter names,
// the sysfs check on a made-up /sys; then end to end through the backend on this machine's WebGPU
// (CI: Mesa lavapipe with FEDIT_REQUIRE_WEBGPU=1, where a WebGPU that cannot start fails).

import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LiveStatus } from '../src/app/api.ts';
import { AppBackend } from '../src/app/backend.ts';
import { estimateCost } from '../src/app/cost.ts';
import { ADAPTER_CACHE_KEEP } from '../src/core/federation/adapters.ts';
import type { FederationSettings } from '../src/core/federation/settings.ts';
import {
  GPU_MARGIN,
  chooseDevice,
  isSoftwareAdapter,
  linuxHasGraphicsDevice,
  probeWebGpu,
} from '../src/app/device.ts';
import { inProcessWorker } from '../src/app/in-process-worker.ts';
import { WorkerProcessLink } from '../src/app/worker-link.ts';
import type { DeviceMeasurement } from '../src/app/worker-protocol.ts';
import { joinAndChoose, startTestFederation, tempDir, writeDataWithBadRows } from './app-fixture.ts';

const measured = (
  provider: 'cpu' | 'webgpu',
  secondsPerStep: number,
  startedOn = provider,
): DeviceMeasurement => ({
  provider,
  startedOn,
  steps: 3,
  secondsPerStep,
  adapterBytes: 1_000_000,
});

test('Automatic takes WebGPU only when it is measurably faster, and says which and why', (t) => {
  // Lavapipe as observed: ~200 tokens/s against ~4,000 on the CPU.
  const lavapipe = chooseDevice(measured('cpu', 0.05), measured('webgpu', 1), true);
  t.is(lavapipe.device, 'cpu');
  t.is(
    lavapipe.why,
    'WebGPU (a software rasteriser, which runs on the CPU) took 1.00 s a step, the CPU 0.050 s (3 steps each): training runs on the CPU, 20.0× faster.',
  );
  t.deepEqual(lavapipe.measured, { cpu: 0.05, webgpu: 1 });
  const gpu = chooseDevice(measured('cpu', 0.9), measured('webgpu', 0.3), false);
  t.is(gpu.device, 'webgpu');
  t.regex(
    gpu.why,
    /^WebGPU took 0\.30 s a step, the CPU 0\.90 s .*: training runs on WebGPU, 3\.0× faster\.$/,
  );
  // Within the margin: a tie keeps the CPU.
  const justFaster = 0.9 / GPU_MARGIN + 0.001;
  t.is(chooseDevice(measured('cpu', 0.9), measured('webgpu', justFaster), false).device, 'cpu');
  t.is(chooseDevice(measured('cpu', 0.9), measured('webgpu', justFaster - 0.01), false).device, 'webgpu');
  // A WebGPU that fell back to the CPU, or failed, is not chosen.
  const fellBack = chooseDevice(measured('cpu', 0.9), measured('webgpu', 0.1, 'cpu'), false);
  t.like(fellBack, {
    device: 'cpu',
    why: 'WebGPU fell back to the CPU on a training step; training runs on the CPU.',
  });
  const failed = chooseDevice(measured('cpu', 0.9), { error: 'no adapter' }, undefined);
  t.like(failed, { device: 'cpu', measured: { cpu: 0.9 } });
  t.regex(failed.why, /WebGPU could not train here \(no adapter\)/);
});

test('a software adapter is told by its adapter info, or by being the fallback adapter', (t) => {
  for (const description of [
    'llvmpipe (LLVM 19.1.7, 256 bits)',
    'lavapipe',
    'SwiftShader Device (Subzero)',
  ]) {
    t.true(isSoftwareAdapter({ description }), description);
  }
  t.true(isSoftwareAdapter({ vendor: 'mesa', device: 'Microsoft Basic Render Driver' }));
  t.true(isSoftwareAdapter({ vendor: 'nvidia', isFallbackAdapter: true }));
  t.false(
    isSoftwareAdapter({ vendor: 'nvidia', architecture: 'ampere', description: 'NVIDIA GeForce RTX 3060' }),
  );
  t.false(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', isFallbackAdapter: false }));
});

test('on Linux, a machine with no DRM card and no display controller can only run WebGPU in software', async (t) => {
  const sys = await tempDir(t, 'fedit-sys-');
  const device = async (name: string, cls: string) => {
    await mkdir(join(sys, 'bus/pci/devices', name), { recursive: true });
    await writeFile(join(sys, 'bus/pci/devices', name, 'class'), `${cls}\n`);
  };
  await device('0000:00:00.0', '0x060000'); // a host bridge
  await device('0000:00:01.0', '0x020000'); // a network card
  t.false(linuxHasGraphicsDevice(sys, 'linux'));
  await device('0000:01:00.0', '0x030000'); // a VGA controller
  t.true(linuxHasGraphicsDevice(sys, 'linux'));
  const drmOnly = await tempDir(t, 'fedit-sys-');
  await mkdir(join(drmOnly, 'bus/pci/devices'), { recursive: true });
  await mkdir(join(drmOnly, 'class/drm/card0'), { recursive: true });
  t.true(linuxHasGraphicsDevice(drmOnly, 'linux'));
  t.is(linuxHasGraphicsDevice(sys, 'darwin'), undefined, 'elsewhere it cannot be told this way');
});

test('Automatic measures a few real steps on the CPU and on WebGPU, trains on the faster, and the page is told why', async (t) => {
  const probe = await probeWebGpu();
  if (!probe.available) {
    if (process.env.FEDIT_REQUIRE_WEBGPU === '1') return t.fail(`WebGPU cannot start: ${probe.reason}`);
    return t.log(`skipped: WebGPU cannot start here (${probe.reason})`) as unknown as void;
  }
  const dir = await tempDir(t, 'fedit-app-device-');
  const fed = await startTestFederation(t, dir, { rounds: 1 });
  const data = await writeDataWithBadRows(dir);
  const home = join(dir, 'home');
  const backend = await AppBackend.open({
    home,
    worker: new WorkerProcessLink(inProcessWorker),
    probeGpu: async () => probe,
    cpuThreads: 2,
  });
  t.teardown(() => backend.close());
  await joinAndChoose(backend, fed, data);
  let state = await backend.updateSettings({ device: 'auto', maxThreads: 1 });
  t.is(state.gpuSoftware, probe.software);
  await backend.start();
  const finished = await new Promise<LiveStatus>((resolve) => {
    const off = backend.onEvent(async () => {
      const now = await backend.getState();
      if (now.status.state === 'finished') {
        off();
        resolve(now.status);
      }
    });
  });
  state = await backend.getState();
  const choice = state.deviceChoice!;
  t.truthy(choice, 'Automatic chose from measured steps');
  const { cpu, webgpu } = choice.measured!;
  t.true(cpu > 0 && webgpu! > 0, JSON.stringify(choice.measured));
  t.is(choice.device, webgpu! * GPU_MARGIN < cpu ? 'webgpu' : 'cpu', choice.why);
  t.is(finished.device, choice.device, 'the round trained where Automatic chose');
  if (probe.software) t.regex(choice.why, /software rasteriser, which runs on the CPU/);
  t.regex(await backend.readLogs(), /device Automatic: /);
  t.log(choice.why);
});

test('the cost of a round before joining: localSteps × the measured step, one float32 update sent, the kept copies on disk', (t) => {
  const settings = { training: { localSteps: 120 } } as unknown as FederationSettings;
  const cost = estimateCost(settings, { ...measured('cpu', 0.5), adapterBytes: 3_000_000 });
  t.deepEqual(cost, {
    device: 'cpu',
    measuredSteps: 3,
    secondsPerStep: 0.5,
    localSteps: 120,
    minutesPerRound: 1, // 120 × 0.5 s
    megabytesSentPerRound: 3,
    diskMegabytes: 3 * (ADAPTER_CACHE_KEEP + 4), // the cached adapters, a checkpoint (LoRA + 2 moments), an update
  });
  // A WebGPU that fell back is counted where the steps really ran.
  t.is(estimateCost(settings, { ...measured('webgpu', 0.5, 'cpu'), adapterBytes: 1 }).device, 'cpu');
});
