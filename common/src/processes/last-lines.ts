import type { ChildProcess } from 'node:child_process';

/**
 * Reads a child's stdout and stderr line by line: each line goes to `onLine`, and the last `keep`
 * lines stay in the returned array (oldest first), for the message when the child fails.
 */
export function keepLastLines(child: ChildProcess, onLine: ((line: string) => void) | undefined, keep = 200): string[] {
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        lines.push(line);
        if (lines.length > keep) lines.shift();
        onLine?.(line);
      }
    });
  }
  return lines;
}
