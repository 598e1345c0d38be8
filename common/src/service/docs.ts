import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/** OpenAPI document details of a service. */
export interface DocsOptions {
  title: string;
  description?: string;
  version?: string;
}

/** OpenAPI generated from the routes' zod schemas at `/docs/json`, Swagger UI at `/docs`. */
export async function installDocs(app: FastifyInstance, options: DocsOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: { title: options.title, description: options.description ?? '', version: options.version ?? '0.1.0' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
