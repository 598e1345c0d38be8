import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { createGenerator } from 'ts-json-schema-generator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SERVICES, composeUpstreamUrls, traefikDynamicConfig, traefikStaticConfig } from '@civildiy/common/topology';

const deployDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/traefik');
const typesOf = (pkg: string) => path.join(path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'index.d.ts');

/**
 * Traefik's published JSON schemas (SchemaStore's traefik-v3 and traefik-v3-file-provider) are not
 * reachable offline; the `@schemastore/*` packages carry TypeScript types generated from them. The
 * generator's output is typed with those types (a compile-time check), and here the files it wrote
 * are validated against JSON schemas derived back from the same types, every object without an
 * index signature rejecting properties it does not declare (as the published schema does with
 * `additionalProperties: false`).
 */
describe("generated Traefik configuration against Traefik's published schema (derived from @schemastore types)", () => {
  let workDir: string;
  let validateDynamic: ValidateFunction;
  let validateStatic: ValidateFunction;

  beforeAll(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'traefik-schema-'));
    // The types use no library type: without TypeScript's lib the program builds in a fraction of the time, with the same schema.
    const tsconfig = path.join(workDir, 'tsconfig.json');
    await writeFile(tsconfig, JSON.stringify({ compilerOptions: { noLib: true, types: [] } }));
    const schemaOf = (pkg: string, type: string) =>
      createGenerator({ path: typesOf(pkg), tsconfig, type, skipTypeCheck: true, additionalProperties: false }).createSchema(type);
    const ajv = new Ajv({ allErrors: true, strict: false });
    validateDynamic = ajv.compile(schemaOf('@schemastore/traefik-v3-file-provider', 'HttpsJsonSchemastoreOrgTraefikV3FileProviderJson'));
    validateStatic = ajv.compile(schemaOf('@schemastore/traefik-v3', 'TraefikV3StaticConfiguration'));
  });
  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const errorsOf = (validate: ValidateFunction, config: unknown) => (validate(config) ? [] : validate.errors!.map((error) => `${error.instancePath} ${error.message}`));

  it('accepts the committed deploy/traefik/dynamic.yml', async () => {
    const committed = parse(await readFile(path.join(deployDir, 'dynamic.yml'), 'utf8'));
    expect(errorsOf(validateDynamic, committed)).toEqual([]);
  });

  it('accepts the committed deploy/traefik/traefik.yml', async () => {
    const committed = parse(await readFile(path.join(deployDir, 'traefik.yml'), 'utf8'));
    expect(errorsOf(validateStatic, committed)).toEqual([]);
  });

  it('rejects a dynamic configuration with an unknown forwardAuth option', () => {
    const config = structuredClone(traefikDynamicConfig({ upstreamUrl: composeUpstreamUrls(SERVICES) }));
    Object.assign(config.http.middlewares['forward-auth-protected']!, { forwardAuth: { address: 'http://auth-service:8101/auth/verify', trustForwardHeaders: false } });
    // The middleware is one of a union (one kind each): every member refuses it.
    expect(errorsOf(validateDynamic, config)).toContain('/http/middlewares/forward-auth-protected/forwardAuth must NOT have additional properties');
  });

  it('rejects a dynamic configuration with a value of the wrong type (a priority as text)', () => {
    const config = structuredClone(traefikDynamicConfig({ upstreamUrl: composeUpstreamUrls(SERVICES) }));
    Object.assign(Object.values(config.http.routers)[0]!, { priority: 'high' });
    expect(errorsOf(validateDynamic, config)).toContain('/http/routers/well-known-jwks-json-get/priority must be number');
  });

  it('rejects a dynamic configuration whose router lacks its required rule', () => {
    const config = structuredClone(traefikDynamicConfig({ upstreamUrl: composeUpstreamUrls(SERVICES) }));
    delete (Object.values(config.http.routers)[0] as { rule?: string }).rule;
    expect(validateDynamic(config)).toBe(false);
  });

  it('rejects a static configuration with a misspelt file provider option', () => {
    const config = structuredClone(traefikStaticConfig());
    Object.assign(config.providers!.file!, { watched: true });
    expect(errorsOf(validateStatic, config)).toContain('/providers/file must NOT have additional properties');
  });
});
