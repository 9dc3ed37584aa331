// Whether ONNX Runtime's WebGPU execution provider can start on this machine (a GPU, or software
// Vulkan such as Mesa lavapipe >= 25). Tests of the WebGPU path are skipped with this reason when it
// cannot, and fail instead when FEDIT_REQUIRE_WEBGPU=1 (CI machines that are meant to have it).
//
// The probe runs in a child process: a broken Vulkan/Dawn setup may abort the process instead of
// throwing, and must not take the test worker with it.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph } from '../../src/graph/ir.ts';
import { add } from '../../src/graph/ops.ts';
import { serializeModel } from '../../src/onnx/serialize.ts';

const kernelsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const PROBE = `
import * as ort from 'onnxruntime-node';
const session = await ort.InferenceSession.create(process.argv[1], {
  executionProviders: ['webgpu'],
  logSeverityLevel: 3,
  extra: { session: { disable_cpu_ep_fallback: '1' } },
});
const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
process.stdout.write('result ' + Array.from(out.y.data).join(','));
`;

function probe(): string | undefined {
  if (process.env.FEDIT_SKIP_WEBGPU === '1') return 'FEDIT_SKIP_WEBGPU=1';
  const dir = mkdtempSync(join(tmpdir(), 'fedit-webgpu-probe-'));
  try {
    const g = new Graph('webgpu_probe');
    const x = g.input('x', 'float32', [2]);
    g.output(add(x, x), 'y');
    const model = join(dir, 'probe.onnx');
    writeFileSync(model, serializeModel(g));
    // cwd = kernels/, so the child resolves onnxruntime-node exactly as the tests do.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE, model], {
      cwd: kernelsDir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.stdout?.includes('result 2,4')) return undefined;
    const lines = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map((l) => l.trim());
    const why =
      lines.find((l) => /adapter/i.test(l))?.replace(/^.*(Failed to get a WebGPU adapter)/, '$1') ??
      lines.find((l) => /vulkan|webgpu|backend|error/i.test(l)) ??
      (r.signal ? `probe killed by ${r.signal}` : `probe exited with ${r.status}`);
    return `the WebGPU execution provider cannot start here (${why.slice(0, 300)}); install a GPU driver or Mesa's lavapipe >= 25 (mesa-vulkan-drivers from Debian backports)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Why WebGPU tests cannot run here, or undefined when they can. */
export const webgpuUnavailable: string | undefined = probe();

/** FEDIT_REQUIRE_WEBGPU=1: a missing WebGPU EP is a failure, not a skip. */
export const webgpuRequired = process.env.FEDIT_REQUIRE_WEBGPU === '1';
