// `fedit tensors FILE`: what a safetensors file (an adapter, a checkpoint shard) holds, and its
// content hash, the identity fedit uses for adapters.
import type { Command } from 'commander';
import { stat } from 'node:fs/promises';
import { FeditError, hashTensors, readSafetensorsFile, readSafetensorsHeader } from '@fedit/shared';

export function registerTensorCommands(program: Command): void {
  program
    .command('tensors')
    .description('list the tensors of a .safetensors file (name, dtype, shape) and its content hash')
    .argument('<file>', 'a .safetensors file')
    .option('--hash', 'also compute the content hash (reads the whole file)')
    .option('--json', 'print one JSON object instead of a table')
    .action(async (file: string, opts: { hash?: boolean; json?: boolean }) => {
      // Reading a directory fails deep inside with an EISDIR that names no path; say it here.
      if (!(await stat(file)).isFile()) {
        throw new FeditError('NOT_A_FILE', `${file}: not a file; give the path of a .safetensors file`);
      }
      const header = await readSafetensorsHeader(file);
      const hash = opts.hash ? hashTensors((await readSafetensorsFile(file)).tensors) : undefined;
      const rows = [...header.tensors.values()].map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
      }));
      if (opts.json) {
        process.stdout.write(JSON.stringify({ file, metadata: header.metadata, tensors: rows, hash }) + '\n');
        return;
      }
      const width = Math.max(4, ...rows.map((r) => r.name.length));
      process.stdout.write(`${'name'.padEnd(width)}  dtype  shape\n`);
      for (const r of rows)
        process.stdout.write(`${r.name.padEnd(width)}  ${r.dtype.padEnd(5)}  [${r.shape.join(', ')}]\n`);
      const params = rows.reduce((s, r) => s + r.shape.reduce((a, b) => a * b, 1), 0);
      process.stdout.write(`${rows.length} tensors, ${params.toLocaleString('en-US')} values\n`);
      if (hash) process.stdout.write(`content hash ${hash}\n`);
    });
}
