import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { TRAEFIK_DEPLOY_DIR, renderTraefikFiles } from '../../scripts/traefik-config.ts';

for (const [name, generated] of Object.entries(renderTraefikFiles())) {
  it(`deploy/traefik/${name} is what the route table gives now (regenerate with npm run traefik:config)`, () => {
    expect(readFileSync(path.join(TRAEFIK_DEPLOY_DIR, name), 'utf8')).toBe(generated);
  });
}
