// An adapter schema seen as LoRA modules: each module's lora_A [r, in] and lora_B [out, r] paired
// by PEFT name, with the shapes checked against each other. Rules that work on the product B A
// (rather than tensor by tensor) start here.

import { parsePeftLoraTensorName } from '../adapter/names.ts';
import { AggregationError } from './aggregation-error.ts';
import { compareUtf8 } from './rule.ts';
import type { AdapterSchema } from './schema.ts';

export interface LoraModule {
  /** e.g. "model.layers.3.self_attn.q_proj". */
  modulePath: string;
  /** PEFT names of the two factors. */
  aName: string;
  bName: string;
  rank: number;
  inFeatures: number;
  outFeatures: number;
}

/**
 * The LoRA modules of `schema`, in ascending UTF-8 order of their lora_A names. Throws
 * AggregationError naming the tensor when a name is not a PEFT LoRA factor, a module lacks one of
 * its factors, or the shapes are not A [r, in] and B [out, r] with the same r.
 */
export function loraModules(schema: AdapterSchema): LoraModule[] {
  const factors = new Map<string, { a?: string; b?: string }>();
  for (const name of schema.keys()) {
    const parsed = parsePeftLoraTensorName(name);
    if (!parsed) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `tensor ${name} is not a PEFT LoRA factor (…lora_A.weight or …lora_B.weight); a product rule needs A and B pairs`,
      );
    }
    const entry = factors.get(parsed.modulePath) ?? {};
    if (parsed.factor === 'A') entry.a = name;
    else entry.b = name;
    factors.set(parsed.modulePath, entry);
  }
  const modules: LoraModule[] = [];
  for (const [modulePath, { a, b }] of factors) {
    if (a === undefined || b === undefined) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `tensor ${a ?? b} has no ${a === undefined ? 'lora_A' : 'lora_B'} partner for module ${modulePath}`,
      );
    }
    modules.push(pairShapes(modulePath, a, schema.get(a)!, b, schema.get(b)!));
  }
  return modules.sort((x, y) => compareUtf8(x.aName, y.aName));
}

function pairShapes(
  modulePath: string,
  aName: string,
  aShape: readonly number[],
  bName: string,
  bShape: readonly number[],
): LoraModule {
  if (aShape.length !== 2) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `tensor ${aName} has shape [${aShape.join(', ')}]; lora_A is [r, in]`,
    );
  }
  if (bShape.length !== 2) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `tensor ${bName} has shape [${bShape.join(', ')}]; lora_B is [out, r]`,
    );
  }
  const [rank, inFeatures] = aShape;
  const [outFeatures, bRank] = bShape;
  if (bRank !== rank || rank <= 0) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `tensor ${bName} [${bShape.join(', ')}] does not match ${aName} [${aShape.join(', ')}]: B is [out, r], A is [r, in], r > 0`,
    );
  }
  return { modulePath, aName, bName, rank, inFeatures, outFeatures };
}

/** `schema` with every module at rank `rank`: A [rank, in], B [out, rank]; same names and order. */
export function schemaAtRank(schema: AdapterSchema, rank: number): AdapterSchema {
  const shapes = new Map<string, readonly number[]>();
  for (const m of loraModules(schema)) {
    shapes.set(m.aName, [rank, m.inFeatures]);
    shapes.set(m.bName, [m.outFeatures, rank]);
  }
  return new Map([...schema.keys()].map((name) => [name, shapes.get(name)!]));
}
