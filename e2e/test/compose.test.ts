import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parse } from 'yaml';
import { loadConfig } from '@civildiy/common';
import { serviceUrlVariable } from '@civildiy/common/discovery';
import { repositoryRoot } from '@civildiy/common/testing';
import { SERVICES } from '@civildiy/common/topology';
import { authEnv } from 'auth-service/config';
import { dashboardEnv } from 'dashboard/config';
import { feedServiceEnv } from 'feed-service/config';
import { gatewayEnv } from 'gateway/config';
import { mockProvidersEnv } from 'mock-providers/config';
import { notificationServiceEnv } from 'notification-service/config';
import { orderServiceEnv } from 'order-service/config';
import { postsServiceEnv } from 'posts-service/config';
import { profileServiceEnv } from 'profile-service/config';
import { searchServiceEnv } from 'search-service/config';
import { workerEnv } from 'worker/config';

/** The part of a Compose service this test reads. */
interface ComposeService {
  image?: string;
  command?: string | string[];
  build?: { context?: string; dockerfile?: string; args?: Record<string, string> };
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition?: string }> | string[];
  networks?: string[] | Record<string, unknown>;
  volumes?: string[];
  mem_limit?: string;
  deploy?: { resources?: { limits?: { memory?: string } } };
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: Record<string, unknown>;
  volumes?: Record<string, unknown>;
}

const composePath = path.join(repositoryRoot, 'docker-compose.yml');
// `merge`: the file shares its common parts through YAML merge keys (<<: *anchor), as Compose reads them.
const compose = parse(readFileSync(composePath, 'utf8'), { merge: true }) as ComposeFile;
const dockerfile = readFileSync(path.join(repositoryRoot, 'Dockerfile'), 'utf8');

/** Each service's environment schema, as its main.ts parses it. */
const ENV_SCHEMAS: Record<string, z.ZodObject> = {
  'mock-providers': mockProvidersEnv,
  'auth-service': authEnv,
  'profile-service': profileServiceEnv,
  'posts-service': postsServiceEnv,
  'feed-service': feedServiceEnv,
  'search-service': searchServiceEnv,
  'order-service': orderServiceEnv,
  'notification-service': notificationServiceEnv,
  worker: workerEnv,
  gateway: gatewayEnv,
  dashboard: dashboardEnv,
};

/**
 * Variables a service reads outside its schema: the dashboard finds the instances it probes through
 * StaticDiscovery, which reads every service's `<NAME>_URL` from the environment.
 */
const READ_OUTSIDE_SCHEMA: Record<string, readonly string[]> = {
  dashboard: SERVICES.map((service) => serviceUrlVariable(service.name)),
};

/** Infrastructure a service needs before it can be ready, recognised by its host in a variable's value. */
const INFRASTRUCTURE_HOSTS: Record<string, RegExp> = {
  redis: /^redis:\/\/redis[:/]/,
  kafka: /(^|,)kafka:9092/,
  consul: /^https?:\/\/consul:/,
  postgres: /^postgres(ql)?:\/\/[^@]*@postgres[:/]/,
  mongo: /^mongodb:\/\/mongo[:/]/,
};

/** `${NAME:-default}` and `${NAME}` as Compose substitutes them from an empty environment. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (_, _name: string, fallback: string | undefined) => fallback ?? '');
}

function environmentOf(service: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([name, value]) => [name, interpolate(value === null ? '' : String(value))]));
}

function dependenciesOf(service: ComposeService): Record<string, { condition?: string }> {
  const dependsOn = service.depends_on ?? {};
  return Array.isArray(dependsOn) ? Object.fromEntries(dependsOn.map((name) => [name, {}])) : dependsOn;
}

/** Whether Compose can wait for `name` to be healthy: a health check of its own, or the root Dockerfile's. */
function hasHealthcheck(name: string): boolean {
  const service = compose.services[name];
  if (!service || service.healthcheck?.disable) return false;
  if (service.healthcheck?.test) return true;
  return service.build !== undefined && /^HEALTHCHECK\s/m.test(dockerfile);
}

const repositoryServices = SERVICES.map((service) => service.name);

describe('docker-compose.yml', () => {
  it('runs every service of the repository, each built from the root Dockerfile with its SERVICE argument', () => {
    expect(repositoryServices).toEqual(expect.arrayContaining(['mock-providers', 'dashboard', 'gateway']));
    for (const name of repositoryServices) {
      const service = compose.services[name];
      expect(service, `${name} is missing`).toBeDefined();
      expect({ name, context: service!.build?.context, dockerfile: service!.build?.dockerfile ?? 'Dockerfile', service: service!.build?.args?.SERVICE }).toEqual({
        name,
        context: '.',
        dockerfile: 'Dockerfile',
        service: name,
      });
    }
    // The one image template every service is built from, and the health check the services inherit.
    expect(dockerfile).toMatch(/^ARG SERVICE$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK\s/m);
  });

  it('runs the infrastructure of Compose: Redis with AOF, Postgres with pgvector, MongoDB as a replica set, Kafka in KRaft mode, Consul and Traefik', () => {
    const { redis, postgres, mongo, kafka, consul, traefik } = compose.services;
    expect(String(redis?.command)).toContain('--appendonly yes');
    expect(postgres?.image).toMatch(/^pgvector\/pgvector:/);
    expect(String(mongo?.command)).toContain('--replSet rs0');
    expect(kafka?.image).toMatch(/^apache\/kafka:/);
    expect(environmentOf(kafka!).KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(consul?.image).toMatch(/^hashicorp\/consul:/);
    expect(traefik?.image).toMatch(/^traefik:v3/);
    expect(traefik?.volumes).toContain('./deploy/traefik:/etc/traefik:ro');
    for (const file of ['deploy/traefik/traefik.yml', 'deploy/traefik/dynamic.yml', 'deploy/mongo/replica-set.js']) {
      expect(existsSync(path.join(repositoryRoot, file)), file).toBe(true);
    }
  });

  it('gives every container a health check, a memory limit and the one network', () => {
    const networks = Object.keys(compose.networks ?? {});
    expect(networks).toHaveLength(1);
    for (const [name, service] of Object.entries(compose.services)) {
      expect({ name, healthcheck: hasHealthcheck(name) }).toEqual({ name, healthcheck: true });
      expect({ name, memory: service.mem_limit ?? service.deploy?.resources?.limits?.memory }).toEqual({ name, memory: expect.stringMatching(/^\d+[kmg]$/) });
      expect({ name, networks: Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {}) }).toEqual({ name, networks });
    }
  });

  it('starts a service only after what it depends on is healthy, and it depends on every store and broker its variables name', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      const dependencies = dependenciesOf(service);
      for (const [dependency, { condition }] of Object.entries(dependencies)) {
        expect({ name, dependency, condition, healthcheck: hasHealthcheck(dependency) }).toEqual({ name, dependency, condition: 'service_healthy', healthcheck: true });
      }
      for (const [variable, value] of Object.entries(environmentOf(service))) {
        for (const [host, pattern] of Object.entries(INFRASTRUCTURE_HOSTS)) {
          if (pattern.test(value)) expect({ name, variable, dependsOn: Object.keys(dependencies) }).toEqual({ name, variable, dependsOn: expect.arrayContaining([host]) });
        }
      }
    }
  });

  it('keeps its stores on named volumes', () => {
    const declared = Object.keys(compose.volumes ?? {});
    const mounts = Object.values(compose.services).flatMap((service) => service.volumes ?? []);
    const named = mounts.map((mount) => mount.split(':')[0]!).filter((source) => !source.startsWith('.') && !source.startsWith('/'));
    expect(new Set(named)).toEqual(new Set(declared));
    for (const store of ['redis', 'postgres', 'mongo', 'kafka', 'consul']) {
      expect({ store, named: (compose.services[store]?.volumes ?? []).some((mount) => declared.includes(mount.split(':')[0]!)) }).toEqual({ store, named: true });
    }
  });

  it("sets only variables each service's environment schema knows, with values it accepts", () => {
    for (const name of repositoryServices) {
      const schema = ENV_SCHEMAS[name];
      expect(schema, `no environment schema listed for ${name}`).toBeDefined();
      const environment = environmentOf(compose.services[name]!);
      const known = new Set([...Object.keys(schema!.shape), ...(READ_OUTSIDE_SCHEMA[name] ?? [])]);
      expect({ name, unknown: Object.keys(environment).filter((variable) => !known.has(variable)) }).toEqual({ name, unknown: [] });
      expect(() => loadConfig(schema!, environment), name).not.toThrow();
    }
  });

  it('runs the services on Kafka, Consul and their own Postgres databases, and posts on MongoDB', () => {
    for (const name of repositoryServices.filter((service) => service !== 'mock-providers')) {
      const environment = environmentOf(compose.services[name]!);
      expect({ name, EVENT_BUS: environment.EVENT_BUS, DISCOVERY: environment.DISCOVERY, SERVICE_ADDRESS: environment.SERVICE_ADDRESS }).toEqual({
        name,
        EVENT_BUS: 'kafka',
        DISCOVERY: 'consul',
        SERVICE_ADDRESS: name,
      });
    }
    const initScript = readFileSync(path.join(repositoryRoot, 'deploy/postgres/init-databases.sh'), 'utf8');
    const created = /^databases=\(([^)]*)\)/m.exec(initScript)?.[1]?.split(/\s+/).filter(Boolean);
    for (const info of SERVICES.filter((service) => service.database)) {
      const url = new URL(environmentOf(compose.services[info.name]!)[info.database!.urlVariable] ?? 'missing:');
      expect({ service: info.name, host: url.hostname, database: url.pathname.slice(1), user: url.username }).toEqual({
        service: info.name,
        host: 'postgres',
        database: info.database!.name,
        user: info.database!.name,
      });
      expect(created).toContain(info.database!.name);
    }
    const posts = environmentOf(compose.services['posts-service']!);
    expect({ store: posts.POSTS_STORE, url: posts.POSTS_MONGODB_URL }).toEqual({ store: 'mongodb', url: expect.stringMatching(/^mongodb:\/\/mongo:27017\/posts\?replicaSet=rs0$/) });
  });
});

/** The installed docker-compose's version, or undefined when there is none. */
function dockerComposeVersion(): string | undefined {
  const probe = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : undefined;
}

const composeVersion = dockerComposeVersion();
// CI installs it (.ci/run: apt-get install docker-compose): there a missing one fails instead of skipping.
const composeSkip = composeVersion === undefined && process.env.CI !== 'true' ? ' (skipped: docker-compose is not installed: apt-get install docker-compose)' : '';

it.skipIf(composeSkip !== '')(`docker-compose ${composeVersion ?? ''} validates docker-compose.yml (config -q, no Docker daemon needed)${composeSkip}`, async () => {
  if (composeVersion === undefined) throw new Error('docker-compose is not installed, and CI must validate the file: apt-get install docker-compose');
  // Rejects with docker-compose's message when the file is invalid.
  await promisify(execFile)('docker-compose', ['-f', composePath, 'config', '-q'], { cwd: repositoryRoot });
});
