// Where graphs run: onnxruntime-node sessions and the choice of execution provider. Nothing here
// knows what a graph computes (that is graph/ and model/); nothing there knows where it runs.

import { FeditError, writeFileAtomic } from '@fedit/shared';
import * as ort from 'onnxruntime-node';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../graph/ir.ts';
import { serializeModel } from '../onnx/serialize.ts';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda' | 'dml';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu', 'cuda', 'dml'];

export interface SessionOptions {
  provider?: ExecutionProvider;
  /** CPU threads for one op (intra-op); default: ORT's choice (all physical cores). */
  threads?: number;
  /** Directory for the .onnx file when the graph has external weights (they are referenced relative to it). */
  modelDir?: string;
  /**
   * Outputs to keep on the device between runs (WebGPU: 'gpu-buffer'). Others come back to the CPU.
   * Reading such an output's data in Node aborts the process; feed it back as an input instead.
   */
  deviceOutputs?: readonly string[];
  /** Fail instead of silently running unsupported nodes on the CPU (used by tests of GPU graphs). */
  forbidCpuFallback?: boolean;
  /** Optimisation level; 'all' unless debugging. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Told about a damaged graph file in `modelDir` that was written again; default: stderr. */
  onWarning?: (message: string) => void;
}

export class ProviderUnavailableError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROVIDER_UNAVAILABLE', message, options);
  }
}

/** The providers this installation of onnxruntime-node can use. */
export function availableProviders(): ExecutionProvider[] {
  const backends = ort.listSupportedBackends() as { name: string; bundled: boolean }[];
  const names = new Set(backends.map((b) => b.name));
  return EXECUTION_PROVIDERS.filter((p) => names.has(p));
}

export interface CompiledSession {
  readonly session: ort.InferenceSession;
  readonly provider: ExecutionProvider;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export async function createSession(graph: Graph, options: SessionOptions = {}): Promise<CompiledSession> {
  const provider = options.provider ?? 'cpu';
  const bytes = serializeModel(graph);
  const hasExternal = graph.initializers.some((i) => i.data.kind === 'external');
  let model: string | Uint8Array = bytes;
  if (hasExternal) {
    if (!options.modelDir)
      throw new Error(`graph ${graph.name} has external weights: a modelDir is required`);
    mkdirSync(options.modelDir, { recursive: true });
    // Content-addressed name, written atomically and durably through a uniquely named temporary
    // file: processes sharing a weight store (a benchmark and a trainer, two participants on one
    // machine) write the same bytes and never clobber each other's graph.
    const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    const path = join(options.modelDir, `${graph.name}-${digest}.onnx`);
    if (!holds(path, bytes)) {
      // The name promises these bytes: a file under it that differs was torn by a crash, so it is
      // replaced, never handed to ORT.
      if (existsSync(path)) {
        const warn = options.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
        warn(`${path} is damaged (an interrupted write?); writing graph ${graph.name} again`);
      }
      try {
        await writeFileAtomic(path, bytes);
      } catch (err) {
        // another process may have put the same graph there meanwhile (and hold it open on Windows)
        if (!holds(path, bytes)) throw err;
      }
    }
    model = path;
  }

  // ORT's extended fusions (SimplifiedLayerNormalization) replace a non-default RMSNorm epsilon
  // with 1e-5 in float64 graphs, found by the reference checks: float64 graphs, which exist for
  // those checks only, stop at the basic level.
  const isFloat64 = graph.inputs.some((v) => v.dtype === 'float64');
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: provider === 'cpu' ? ['cpu'] : [provider],
    graphOptimizationLevel: options.optimization ?? (isFloat64 ? 'basic' : 'all'),
    logSeverityLevel: 3,
    // With ORT's memory pattern on, the second run of a training graph allocates the whole planned
    // pattern as one block beside the arena chunks of the first run: peak RSS of the SmolLM2-135M
    // step went from 4.2 GB to 6.2 GB, for no measurable speed (npm run bench -- train).
    enableMemPattern: false,
  };
  if (options.threads) sessionOptions.intraOpNumThreads = options.threads;
  if (options.deviceOutputs?.length && provider !== 'cpu') {
    const loc = provider === 'webgpu' ? 'gpu-buffer' : 'cpu';
    sessionOptions.preferredOutputLocation = Object.fromEntries(
      graph.outputs.map((o) => [o.name, options.deviceOutputs!.includes(o.name) ? loc : 'cpu']),
    ) as Record<string, ort.Tensor.DataLocation>;
  }
  // Only for other providers: on the CPU EP itself ORT would reject every node as a "fallback".
  if (options.forbidCpuFallback && provider !== 'cpu')
    sessionOptions.extra = { session: { disable_cpu_ep_fallback: '1' } };

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model as string, sessionOptions);
  } catch (err) {
    if (provider !== 'cpu') {
      throw new ProviderUnavailableError(
        `execution provider '${provider}' could not start: ${(err as Error).message.split('\n')[0]}`,
        { cause: err },
      );
    }
    throw err;
  }
  return {
    session,
    provider,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run: (feeds) => session.run(feeds) as Promise<Record<string, ort.Tensor>>,
    release: () => session.release(),
  };
}

/** Whether the file at `path` holds exactly `bytes`. */
function holds(path: string, bytes: Uint8Array): boolean {
  try {
    return statSync(path).size === bytes.length && Buffer.compare(readFileSync(path), bytes) === 0;
  } catch {
    return false;
  }
}
