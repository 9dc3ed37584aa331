// The base model folder and the data files the person chose, as the worker checked them. Both
// checks depend on the federation (its base model; its prompt template, to tokenize previews), so
// the backend runs them again after joining or leaving.

import { basename } from 'node:path';
import type { DatasetReport } from '../core/data/index.ts';
import type { FederationSettings } from '../core/federation/index.ts';
import type { DataSelection, ModelCheck } from './api.ts';
import type { AppLog } from './app-log.ts';
import { shortHash } from './federation-summary.ts';
import type { WorkerLink } from './worker-protocol.ts';

/** Training examples shown as previews. */
const PREVIEWS = 3;

export class Selections {
  readonly #worker: WorkerLink;
  readonly #log: AppLog;
  #model: { dir: string; identity?: string; problem?: string } | undefined;
  #data: DataSelection | undefined;

  constructor(worker: WorkerLink, log: AppLog) {
    this.#worker = worker;
    this.#log = log;
  }

  get data(): DataSelection | undefined {
    return this.#data;
  }

  /** The model folder as checked, and whether it is `federation`'s base model. */
  model(federation: FederationSettings | undefined): ModelCheck | undefined {
    const model = this.#model;
    if (!model) return undefined;
    if (model.problem) return { dir: model.dir, ok: false, identity: model.identity, problem: model.problem };
    const base = federation?.baseModel;
    if (base && model.identity !== base.identity) {
      return {
        dir: model.dir,
        ok: false,
        identity: model.identity,
        problem: `This is not the federation's base model. The federation trains ${base.name} (identity ${shortHash(base.identity)}); this folder holds a model with identity ${shortHash(model.identity!)}. Choose the same checkpoint the other participants use.`,
      };
    }
    return { dir: model.dir, ok: true, identity: model.identity };
  }

  /** What is missing of the model and data before training can start, in words. */
  problem(federation: FederationSettings | undefined): string | undefined {
    const model = this.model(federation);
    if (!model) return "choose the base model's folder first";
    if (!model.ok) return model.problem;
    if (!this.#data) return 'choose your data first';
    if (this.#data.report.usable === 0) return 'your data holds no usable training example; see the report';
    return undefined;
  }

  /** The choices of the last session, checked again (the files may have changed since). */
  async restore(
    chosen: { modelDir?: string; dataFiles?: string[] },
    federation: FederationSettings | undefined,
  ): Promise<void> {
    if (chosen.modelDir) await this.checkModel(chosen.modelDir);
    if (!chosen.dataFiles?.length) return;
    await this.prepareData(chosen.dataFiles, federation).catch((error: unknown) =>
      this.#log.warn(`the data chosen last time cannot be read: ${(error as Error).message}`),
    );
  }

  /** Has the worker load `dir` as a model; one that cannot be used is kept with why. */
  async checkModel(dir: string): Promise<void> {
    try {
      const result = await this.#worker.request({ kind: 'check-model', dir });
      this.#model = { dir, identity: result.identity };
      this.#log.info(
        `model ${dir}: ${result.modelType}, ${result.layers} layers, identity ${result.identity}`,
      );
    } catch (error) {
      const message = (error as Error).message;
      this.#model = { dir, problem: `This folder cannot be used as a model: ${message}` };
      this.#log.warn(`model ${dir} cannot be used: ${message}`);
    }
  }

  /** Has the worker validate `files`, and tokenize previews when the model and federation allow. */
  async prepareData(files: string[], federation: FederationSettings | undefined): Promise<void> {
    const model = this.model(federation);
    const tokens =
      model?.ok && model.identity && federation
        ? {
            modelDir: model.dir,
            template: federation.training.template,
            cutoffLen: federation.training.cutoffLen,
            trainOnInputs: federation.training.trainOnInputs,
          }
        : undefined;
    const result = await this.#worker.request({ kind: 'prepare-data', files, tokens, previews: PREVIEWS });
    const previewProblem = tokens ? undefined : previewProblemOf(model);
    this.#data = { files, report: result.report, previews: result.previews, previewProblem };
    const r = result.report;
    this.#log.info(
      `data ${files.map((f) => basename(f)).join(', ')}: ${r.records} records, ${r.usable} usable, ${r.skipped.total} skipped${previewProblem ? ` (not tokenized yet: ${previewProblem})` : ''}`,
    );
  }

  /** The data checked again (after the model or the federation changed); a failure keeps the last check. */
  async recheckData(federation: FederationSettings | undefined): Promise<void> {
    if (this.#data) await this.prepareData(this.#data.files, federation).catch(() => undefined);
  }

  /** The participant's own validation of the data (at the start of a run). */
  setReport(report: DatasetReport): void {
    if (this.#data) this.#data = { ...this.#data, report };
  }
}

/** Why the data cannot be tokenized yet (previews and token lengths need it), in words. */
function previewProblemOf(model: ModelCheck | undefined): string {
  const why =
    "the examples are shown, and their lengths counted, in tokens of the base model with the federation's prompt template";
  if (!model) return `choose the base model first: ${why}`;
  if (!model.ok) return `choose a model folder that works and is the federation's base model first: ${why}`;
  return `join a federation first: ${why}`;
}
