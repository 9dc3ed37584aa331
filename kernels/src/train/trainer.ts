// Runs compiled step graphs and owns the training state between steps. On the CPU the state is
// plain Float32Arrays; on WebGPU it stays in GPU buffers (outputs fed back as inputs) and only the
// loss and gradient norm come back each step. Reading GPU tensors goes through a tiny identity
// graph whose outputs ONNX Runtime copies to the CPU, because Tensor.getData() on a GPU tensor
// aborts Node.

import * as ort from 'onnxruntime-node';
import { Graph } from '../graph/ir.ts';
import { ModelConfigError } from '../model/config.ts';
import type { LoraConfig } from '../model/lora.ts';
import { initLoraTensors } from '../model/lora.ts';
import { uniformSampler } from '../model/random.ts';
import { dropoutSeed } from '../model/dropout.ts';
import {
  createSession,
  ProviderUnavailableError,
  type CompiledSession,
  type ExecutionProvider,
} from '../runtime/session.ts';
import { makeBatch, type BatchTensors, type TokenRow } from './batch.ts';
import {
  buildStepGraph,
  io,
  PROXIMAL_MU,
  trainableSpecs,
  type ParamSpec,
  type StepGraphOptions,
  type StepKind,
} from './graphs.ts';
import { stepScalarValues } from './optimizer.ts';
import {
  checkFederatedOptions,
  gradientTermsOf,
  TrainingOptionsError,
  type FederatedTrainingOptions,
} from './federated-options.ts';

export interface TrainerOptions extends Omit<StepGraphOptions, 'gradientTerms'>, FederatedTrainingOptions {
  provider?: ExecutionProvider;
  threads?: number;
  /** Shorter sequence buckets to compile on demand besides `seq` (the largest); rows go to the smallest that fits. */
  seqBuckets?: readonly number[];
  /** Micro-batches per optimizer step (gradient accumulation); 1 runs the fused train_step. */
  microBatches?: number;
  /** Starting values of the trainable tensors (e.g. the global adapter); default: PEFT's init from `seed`. */
  initial?: ReadonlyMap<string, Float32Array | Float64Array>;
  /**
   * Only evaluate: compiles the eval graph alone (no backward pass, no optimizer) and keeps no Adam
   * moments; trainStep refuses to run.
   */
  evalOnly?: boolean;
  /** Told when the requested provider could not start and the CPU is used instead. */
  onWarning?: (message: string) => void;
  /** For tests of GPU graphs: fail if any node would fall back to the CPU. */
  forbidCpuFallback?: boolean;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  /** Target tokens that counted in the loss. */
  tokens: number;
}

/** Everything needed to continue training exactly where it stopped (checkpoint/resume). */
export interface TrainerState {
  step: number;
  tensors: Map<string, Float32Array | Float64Array>;
}

type StateTensors = Map<string, ort.Tensor>;

/**
 * What a Trainer's compiled graphs depend on, as a string (the weights are compared by identity):
 * the model, LoRA (rank, alpha, dropout rate, targets), fully trained tensors, batch, sequence
 * buckets, micro-batches, AdamW's constants, FFA-LoRA, which gradient terms are compiled in,
 * evalOnly, and where and how the sessions run. Everything else is fed to the graphs as an input
 * (the seed through dropout_seed, the starting values, FedProx's mu and anchor, SCAFFOLD's
 * correction values), so options differing only there can reuse the compiled graphs.
 */
function compileKey(o: TrainerOptions): string {
  return JSON.stringify({
    model: o.model,
    lora: o.lora ?? null,
    fullyTrained: o.fullyTrained ?? [],
    batch: o.batch,
    seq: o.seq,
    seqBuckets: [...(o.seqBuckets ?? [])].sort((a, b) => a - b),
    microBatches: o.microBatches ?? 1,
    optimizer: o.optimizer,
    freezeLoraA: o.freezeLoraA ?? false,
    gradientTerms: gradientTermsOf(o),
    evalOnly: o.evalOnly ?? false,
    provider: o.provider ?? 'cpu',
    threads: o.threads ?? null,
    forbidCpuFallback: o.forbidCpuFallback ?? false,
  });
}

export class Trainer {
  /** Compiled graphs, by kind and sequence bucket ('train_step@256'); apply_step and readback have no bucket. */
  private sessions = new Map<string, CompiledSession>();
  private state: StateTensors = new Map();
  /** Fixed inputs of the optimizer step: proximal_mu, anchors and corrections (empty when off). */
  private termFeeds: Record<string, ort.Tensor> = {};
  /** Whether the tensors no step replaces are in device buffers (see pinFixedTensors). */
  private pinned = false;
  private stepCount = 0;
  private readonly compiledFor: string;

  private constructor(
    private opts: TrainerOptions,
    readonly provider: ExecutionProvider,
    readonly specs: ParamSpec[],
  ) {
    this.compiledFor = compileKey(opts);
  }

  /** The options of the run in progress: those of create(), or of the last reset(). */
  get options(): TrainerOptions {
    return this.opts;
  }

  static async create(options: TrainerOptions): Promise<Trainer> {
    const window = options.model.slidingWindow;
    if (window !== undefined && options.seq > window) {
      // The graphs attend to the whole sequence, the model (Mistral v0.1) to its last `window`
      // tokens: the same up to the window, different beyond it.
      throw new ModelConfigError(
        `sequences of up to ${options.seq} tokens are longer than the model's sliding_window (${window}); ` +
          `fedit does not implement windowed attention: use a cut-off length of at most ${window} tokens`,
      );
    }
    const specs = trainableSpecs(options);
    checkFederatedOptions(options, specs);
    let provider = options.provider ?? 'cpu';
    // Evaluating (or with nothing to train, a base model), only the eval graph is ever needed.
    const kind: StepKind =
      options.evalOnly || specs.length === 0
        ? 'eval_step'
        : (options.microBatches ?? 1) > 1
          ? 'grad_step'
          : 'train_step';
    let trainer = new Trainer(options, provider, specs);
    try {
      await trainer.session(kind);
    } catch (err) {
      if (!(err instanceof ProviderUnavailableError) || options.forbidCpuFallback) throw err;
      options.onWarning?.(`${err.message}; training on the CPU instead`);
      provider = 'cpu';
      trainer = new Trainer(options, provider, specs);
      await trainer.session(kind);
    }
    trainer.initState();
    return trainer;
  }

  /** Whether `options` compile the same graphs as this trainer's: then reset() can stand for create(). */
  compilesSameAs(options: TrainerOptions): boolean {
    return options.weights === this.opts.weights && compileKey(options) === this.compiledFor;
  }

  /**
   * Starts a new run on the graphs already compiled: afterwards the trainer is in the state
   * Trainer.create(options) would give (the starting values from `options.initial` or the seed,
   * zero Adam moments, step 0, FedProx's anchor and SCAFFOLD's correction from `options`), bit for
   * bit, without compiling anything. Refuses options that compile other graphs (see compilesSameAs).
   */
  reset(options: TrainerOptions): void {
    if (!this.compilesSameAs(options))
      throw new TrainingOptionsError(
        'reset: these options compile other graphs (model, LoRA, batch, buckets, optimizer, freezeLoraA, gradient terms or provider differ); create a new Trainer',
      );
    checkFederatedOptions(options, this.specs);
    this.disposeState();
    this.state.clear();
    this.termFeeds = {};
    this.pinned = false;
    this.stepCount = 0;
    this.opts = options;
    this.initState();
  }

  get dtype(): 'float32' | 'float64' {
    return this.options.weights.dtype;
  }

  get step(): number {
    return this.stepCount;
  }

  private tensor(data: Float32Array | Float64Array, shape: readonly number[]): ort.Tensor {
    const typed = this.dtype === 'float32' ? Float32Array.from(data) : Float64Array.from(data);
    return new ort.Tensor(this.dtype, typed, shape);
  }

  private scalar(v: number): ort.Tensor {
    return this.tensor(this.dtype === 'float32' ? Float32Array.of(v) : Float64Array.of(v), []);
  }

  /** The tensors an optimizer step updates (all but FFA-LoRA's frozen A factors). */
  private get trained(): ParamSpec[] {
    return this.specs.filter((s) => !s.frozen);
  }

  private initState(): void {
    const o = this.options;
    const init =
      o.initial ??
      (o.lora ? initLoraTensors(o.model, o.lora as LoraConfig, uniformSampler(o.seed)) : new Map());
    for (const s of this.specs) {
      const value = init.get(s.name);
      if (!value && !(o.fullyTrained ?? []).includes(s.name))
        throw new Error(`no initial value for ${s.name}`);
      const size = s.shape.reduce((a, b) => a * b, 1);
      if (value && value.length !== size) {
        throw new Error(
          `initial ${s.name} has ${value.length} values, expected ${size} for shape [${s.shape}]`,
        );
      }
      const start = value ?? new Float32Array(size);
      this.state.set(io.param(s.name), this.tensor(start, s.shape));
      if (o.evalOnly || s.frozen) continue;
      this.state.set(io.adamM(s.name), this.tensor(new Float32Array(size), s.shape));
      this.state.set(io.adamV(s.name), this.tensor(new Float32Array(size), s.shape));
      this.initTermFeeds(s, start);
    }
  }

  /** The fixed gradient-term inputs of trained tensor `s`, which starts training at `start`. */
  private initTermFeeds(s: ParamSpec, start: Float32Array | Float64Array): void {
    const { proximal, gradientCorrection, stepCorrection } = this.options;
    if (proximal) {
      this.termFeeds[PROXIMAL_MU] ??= this.scalar(proximal.mu);
      this.termFeeds[io.anchor(s.name)] = this.tensor(proximal.anchor?.get(s.name) ?? start, s.shape);
    }
    if (gradientCorrection)
      this.termFeeds[io.correction(s.name)] = this.tensor(gradientCorrection.get(s.name)!, s.shape);
    if (stepCorrection)
      this.termFeeds[io.stepCorrection(s.name)] = this.tensor(stepCorrection.get(s.name)!, s.shape);
  }

  /** The state tensors of one tensor: the value, and its Adam moments unless frozen or evaluating only. */
  private stateNames(s: ParamSpec): string[] {
    return this.options.evalOnly || s.frozen
      ? [io.param(s.name)]
      : [io.param(s.name), io.adamM(s.name), io.adamV(s.name)];
  }

  /** The state tensors named `names`, as feeds. */
  private stateFeeds(names: readonly string[]): Record<string, ort.Tensor> {
    return Object.fromEntries(names.map((n) => [n, this.state.get(n)!]));
  }

  /** Which step graphs have been compiled so far, by kind and sequence bucket ('eval_step@16'). */
  get compiledGraphs(): string[] {
    return [...this.sessions.keys()];
  }

  /** The smallest sequence bucket that holds every row (graphs are compiled per bucket, on first use). */
  bucketFor(rows: readonly TokenRow[]): number {
    const longest = Math.max(1, ...rows.map((r) => r.inputIds.length));
    const buckets = [...(this.options.seqBuckets ?? []), this.options.seq].sort((a, b) => a - b);
    const fit = buckets.find((b) => b >= longest);
    if (fit === undefined)
      throw new Error(
        `a row of ${longest} tokens is longer than the largest sequence bucket (${this.options.seq})`,
      );
    return fit;
  }

  private async session(
    kind: StepKind | 'readback' | 'upload',
    seq = this.options.seq,
  ): Promise<CompiledSession> {
    const key = kind === 'readback' || kind === 'upload' || kind === 'apply_step' ? kind : `${kind}@${seq}`;
    const hit = this.sessions.get(key);
    if (hit) return hit;
    const gradientTerms = gradientTermsOf(this.options);
    const graph =
      kind === 'readback'
        ? this.readbackGraph()
        : kind === 'upload'
          ? this.uploadGraph()
          : buildStepGraph(kind, { ...this.options, seq, gradientTerms });
    const outputs = graph.outputs.map((o) => o.name);
    const onDevice =
      kind === 'readback' ? [] : kind === 'upload' ? outputs : outputs.filter((n) => n.endsWith('.next'));
    const s = await createSession(graph, {
      provider: this.provider,
      threads: this.options.threads,
      modelDir: this.options.weights.dir,
      deviceOutputs: onDevice,
      forbidCpuFallback: this.options.forbidCpuFallback,
    });
    this.sessions.set(key, s);
    return s;
  }

  private readbackGraph(): Graph {
    const g = new Graph('readback');
    for (const s of this.specs) {
      for (const name of this.stateNames(s)) {
        g.output(g.input(name, this.dtype, s.shape), `${name}.host`);
      }
    }
    return g;
  }

  /** The tensors no step replaces: frozen A factors, anchors and corrections (not the scalar mu). */
  private fixedTensors(): Record<string, ort.Tensor> {
    const frozen = this.specs.filter((s) => s.frozen).map((s) => io.param(s.name));
    const { [PROXIMAL_MU]: _mu, ...terms } = this.termFeeds;
    return { ...this.stateFeeds(frozen), ...terms };
  }

  /** Identity over the fixed tensors, whose outputs a GPU provider keeps in device buffers. */
  private uploadGraph(): Graph {
    const g = new Graph('upload');
    for (const [name, t] of Object.entries(this.fixedTensors()))
      g.output(g.input(name, this.dtype, t.dims), `${name}.device`);
    return g;
  }

  /**
   * On WebGPU, copies the fixed tensors into device buffers once (and again after importState)
   * instead of letting every step upload them from the CPU, as trained tensors already stay there.
   */
  private async pinFixedTensors(): Promise<void> {
    this.pinned = true;
    const fixed = this.fixedTensors();
    if (this.provider !== 'webgpu' || Object.keys(fixed).length === 0) return;
    const out = await (await this.session('upload')).run(fixed);
    for (const [name, prev] of Object.entries(fixed)) {
      const pinned = out[`${name}.device`];
      if (this.state.has(name)) this.state.set(name, pinned);
      else this.termFeeds[name] = pinned;
      if (prev.location === 'gpu-buffer') prev.dispose();
    }
  }

  private batchFeeds(
    rows: TokenRow[],
    seq: number,
  ): { feeds: Record<string, ort.Tensor>; batch: BatchTensors } {
    const b = makeBatch(this.options.model, rows, this.options.batch, seq, this.dtype);
    const { targetTokens: _t, ...feeds } = b;
    return { feeds, batch: b };
  }

  private replaceState(out: Record<string, ort.Tensor>, names: string[]): void {
    for (const n of names) {
      const prev = this.state.get(n);
      this.state.set(n, out[io.next(n)]);
      if (prev && prev.location === 'gpu-buffer') prev.dispose();
    }
  }

  /** One optimizer step over `microBatches` (each up to `batch` rows); `lr` comes from the host's schedule. */
  async trainStep(microBatches: TokenRow[][], lr: number): Promise<StepResult> {
    const k = this.options.microBatches ?? 1;
    if (this.specs.length === 0)
      throw new Error('trainStep: nothing to train (no LoRA and no fully trained tensors)');
    if (this.options.evalOnly) throw new Error('trainStep: this Trainer was created with evalOnly');
    if (microBatches.length !== k)
      throw new Error(`trainStep: expected ${k} micro-batches, got ${microBatches.length}`);
    if (!this.pinned) await this.pinFixedTensors();
    const t = this.stepCount + 1;
    const sc = stepScalarValues(this.options.optimizer, lr, t);
    const scalars = {
      lr: this.scalar(sc.lr),
      bias_correction1: this.scalar(sc.biasCorrection1),
      bias_correction2_sqrt: this.scalar(sc.biasCorrection2Sqrt),
    };
    const stateNames = this.trained.flatMap((s) => this.stateNames(s));
    // Dropout masks are a function of (seed, step, micro-batch): a resumed run draws the same ones.
    const dropout = (micro: number): Record<string, ort.Tensor> =>
      (this.options.lora?.dropout ?? 0) > 0
        ? { dropout_seed: this.scalar(dropoutSeed(this.options.seed, t, micro)) }
        : {};
    let tokens = 0;
    const seq = this.bucketFor(microBatches.flat());

    if (k === 1) {
      const { feeds, batch } = this.batchFeeds(microBatches[0], seq);
      tokens = batch.targetTokens;
      const session = await this.session('train_step', seq);
      const out = await session.run({
        ...feeds,
        ...dropout(0),
        ...scalars,
        ...Object.fromEntries(this.state),
        ...this.termFeeds,
      });
      this.replaceState(out, stateNames);
      this.stepCount = t;
      return { loss: Number(out.loss.data[0]), gradNorm: Number(out.grad_norm.data[0]), tokens };
    }

    // Gradient accumulation: HF Trainer's convention, the mean of the micro-batch mean losses.
    const gradSession = await this.session('grad_step', seq);
    let acc: Record<string, ort.Tensor> = Object.fromEntries(
      this.trained.map((s) => [
        io.grad(s.name),
        this.tensor(new Float32Array(s.shape.reduce((a, b) => a * b, 1)), s.shape),
      ]),
    );
    let lossSum = 0;
    const params = this.stateFeeds(this.specs.map((s) => io.param(s.name)));
    for (const [micro, rows] of microBatches.entries()) {
      const { feeds, batch } = this.batchFeeds(rows, seq);
      tokens += batch.targetTokens;
      const out = await gradSession.run({
        ...feeds,
        ...dropout(micro),
        ...params,
        ...acc,
        grad_scale: this.scalar(1 / k),
      });
      lossSum += Number(out.loss.data[0]);
      for (const v of Object.values(acc)) if (v.location === 'gpu-buffer') v.dispose();
      acc = Object.fromEntries(this.trained.map((s) => [io.grad(s.name), out[io.next(io.grad(s.name))]]));
    }
    const apply = await this.session('apply_step');
    const out = await apply.run({ ...acc, ...scalars, ...this.stateFeeds(stateNames), ...this.termFeeds });
    for (const v of Object.values(acc)) if (v.location === 'gpu-buffer') v.dispose();
    this.replaceState(out, stateNames);
    this.stepCount = t;
    return { loss: lossSum / k, gradNorm: Number(out.grad_norm.data[0]), tokens };
  }

  /** Masked loss sum and target-token count of `rows` under the current tensors (no update). */
  async evaluate(rows: TokenRow[]): Promise<{ lossSum: number; tokens: number }> {
    const seq = this.bucketFor(rows);
    const session = await this.session('eval_step', seq);
    const { feeds } = this.batchFeeds(rows, seq);
    const params = this.stateFeeds(this.specs.map((s) => io.param(s.name)));
    const out = await session.run({ ...feeds, ...params });
    return { lossSum: Number(out.loss_sum.data[0]), tokens: Number(out.token_count.data[0]) };
  }

  /** The full state (tensors and optimizer moments, on the host) for a checkpoint. */
  async exportState(): Promise<TrainerState> {
    const tensors = new Map<string, Float32Array | Float64Array>();
    const onGpu = [...this.state.values()].some((t) => t.location === 'gpu-buffer');
    if (onGpu) {
      const out = await (await this.session('readback')).run(Object.fromEntries(this.state));
      for (const name of this.state.keys()) tensors.set(name, out[`${name}.host`].data as Float32Array);
    } else {
      for (const [name, t] of this.state) tensors.set(name, (t.data as Float32Array).slice());
    }
    return { step: this.stepCount, tensors };
  }

  /** The trainable tensors only (the adapter), by name. */
  async parameters(): Promise<Map<string, Float32Array | Float64Array>> {
    const { tensors } = await this.exportState();
    return new Map(this.specs.map((s) => [s.name, tensors.get(io.param(s.name))!]));
  }

  /** Continues from a checkpoint made by exportState(). */
  importState(state: TrainerState): void {
    for (const s of this.specs) {
      for (const name of this.stateNames(s)) {
        const v = state.tensors.get(name);
        if (!v) throw new Error(`checkpoint has no tensor ${name}`);
        const prev = this.state.get(name);
        if (prev?.location === 'gpu-buffer') prev.dispose();
        this.state.set(name, this.tensor(v, s.shape));
      }
    }
    this.stepCount = state.step;
    if (this.specs.some((s) => s.frozen)) this.pinned = false;
  }

  /** Frees the device buffers of the state and fixed inputs (CPU tensors are the GC's). */
  private disposeState(): void {
    for (const t of [...this.state.values(), ...Object.values(this.termFeeds)])
      if (t.location === 'gpu-buffer') t.dispose();
  }

  async release(): Promise<void> {
    this.disposeState();
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}
