/**
 * The `[name]` in front of every line `npm start` prints, one colour per process when the output is
 * a terminal, so the interleaved logs of ten processes stay readable.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { styleText } from 'node:util';

const COLOURS = ['blue', 'green', 'magenta', 'cyan', 'yellow', 'red', 'gray'] as const;

/** Whether prefixes (and the services' pretty logs) are coloured. */
export const colourOutput = process.stdout.isTTY === true;

/** `[name]` padded to `width`, coloured by `index` (the launcher's own prefix is bold instead). */
export function linePrefix(name: string, index: number | 'launcher', width: number): string {
  const text = `[${name}]`.padEnd(width + 2);
  if (!colourOutput) return text;
  return styleText(index === 'launcher' ? 'bold' : COLOURS[index % COLOURS.length]!, text);
}

/** Copies `input` to `output` line by line, each line after `prefix`. */
export function pipeLines(input: Readable, output: Writable, prefix: string): void {
  createInterface({ input, crlfDelay: Infinity }).on('line', (line) => output.write(`${prefix} ${line}\n`));
}
