// Loading a participant's dataset: every file read, its format told from its first records (or
// given), every record normalised to a conversation or skipped with a reason. A bad row never
// stops the run; a file that is not JSON at all, or whose format cannot be told, does.

import { conversationKey } from './conversation-key.ts';
import { DatasetError } from './errors.ts';
import { detectFormat, isDatasetFormat, normalize, type DatasetFormat } from './formats.ts';
import { detectContainer, readRecords, type Container, type ReadItem } from './read.ts';
import type { Example, SkippedRow, SourceRef } from './types.ts';

export interface DatasetFileSpec {
  path: string;
  /** The format of this file's records; detected from its first records when absent. */
  format?: DatasetFormat;
  /** JSON array or JSON Lines; detected from the first character when absent. */
  container?: Container;
}

export interface LoadOptions {
  /** The format of every file that does not name its own. */
  format?: DatasetFormat;
  /** Leave out records whose conversation repeats an earlier one (reported as 'duplicate'). Default false. */
  dropDuplicates?: boolean;
  /** How many records, from the start of each file, decide its format. Default 32. */
  detectFrom?: number;
}

export interface FileSummary {
  path: string;
  container: Container;
  format: DatasetFormat;
  /** True when the format was told from the records, false when it was given. */
  formatDetected: boolean;
  /** Records in the file (a JSON Lines line that is not valid JSON counts as one). */
  records: number;
  usable: number;
  skipped: number;
}

export interface DuplicateRow {
  source: SourceRef;
  /** The earlier record it repeats. */
  first: SourceRef;
}

export interface LoadedDataset {
  examples: Example[];
  files: FileSummary[];
  /** Every skipped row, in file order. */
  skipped: SkippedRow[];
  /** Every record that repeats an earlier one (kept in `examples` unless dropDuplicates). */
  duplicates: DuplicateRow[];
  duplicatesDropped: boolean;
}

const DEFAULT_DETECT_FROM = 32;

export async function loadDataset(
  files: readonly (string | DatasetFileSpec)[],
  options: LoadOptions = {},
): Promise<LoadedDataset> {
  if (files.length === 0) throw new DatasetError('DATASET_OPTIONS', 'no dataset files given');
  for (const format of [
    options.format,
    ...files.map((f) => (typeof f === 'string' ? undefined : f.format)),
  ]) {
    if (format !== undefined && !isDatasetFormat(format)) {
      throw new DatasetError(
        'DATASET_FORMAT',
        `unknown dataset format '${String(format)}'; choose alpaca, dolly, sharegpt or messages`,
      );
    }
  }
  const detectFrom = options.detectFrom ?? DEFAULT_DETECT_FROM;
  const loaded: LoadedDataset = {
    examples: [],
    files: [],
    skipped: [],
    duplicates: [],
    duplicatesDropped: options.dropDuplicates ?? false,
  };
  const seen = new Map<string, SourceRef>();

  for (const entry of files) {
    const spec: DatasetFileSpec = typeof entry === 'string' ? { path: entry } : entry;
    const container = spec.container ?? (await detectContainer(spec.path));
    const items = readRecords(spec.path, container);

    try {
      // Read ahead far enough to tell the format, then process what was read and the rest alike.
      const head: ReadItem[] = [];
      let records = 0;
      let done = false;
      while (records < detectFrom) {
        const next = await items.next();
        if (next.done) {
          done = true;
          break;
        }
        head.push(next.value);
        if (next.value.kind === 'record') records++;
      }
      if (head.length === 0) {
        throw new DatasetError('DATASET_EMPTY', `${spec.path}: the file holds no records`);
      }
      const given = spec.format ?? options.format;
      const format =
        given ??
        detectFormat(
          head.flatMap((i) => (i.kind === 'record' ? [i.value] : [])),
          spec.path,
        );
      const summary: FileSummary = {
        path: spec.path,
        container,
        format,
        formatDetected: given === undefined,
        records: 0,
        usable: 0,
        skipped: 0,
      };

      const take = (item: ReadItem): void => {
        summary.records++;
        if (item.kind === 'invalid') {
          summary.skipped++;
          loaded.skipped.push({
            source: item.source,
            column: item.column,
            code: item.code,
            reason: item.reason,
          });
          return;
        }
        const result = normalize(item.value, format);
        if (!result.ok) {
          summary.skipped++;
          const row: SkippedRow = { source: item.source, code: result.code, reason: result.reason };
          if (result.field !== undefined) row.field = result.field;
          loaded.skipped.push(row);
          return;
        }
        const key = conversationKey(result.conversation);
        const first = seen.get(key);
        if (first === undefined) seen.set(key, item.source);
        else {
          loaded.duplicates.push({ source: item.source, first });
          if (loaded.duplicatesDropped) {
            summary.skipped++;
            loaded.skipped.push({
              source: item.source,
              code: 'duplicate',
              reason: `the same conversation as ${first.file}:${first.line}`,
            });
            return;
          }
        }
        summary.usable++;
        loaded.examples.push({ ...result.conversation, source: item.source });
      };

      for (const item of head) take(item);
      if (!done) for await (const item of items) take(item);
      loaded.files.push(summary);
    } finally {
      // A file abandoned early (its format cannot be told) must not keep its stream open.
      await items.return(undefined);
    }
  }
  return loaded;
}
