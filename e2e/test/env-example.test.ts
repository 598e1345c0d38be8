import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { renderEnvExample } from '../../scripts/env-example.ts';

it('.env.example documents every variable the services read (regenerate with npm run env:example)', () => {
  const committed = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../.env.example'), 'utf8');
  expect(committed).toBe(renderEnvExample());
});
