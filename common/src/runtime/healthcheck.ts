/**
 * The images' health check (`HEALTHCHECK CMD node /app/common/dist/runtime/healthcheck.js`): asks
 * the service named by `CIVILDIY_SERVICE` (set from the image's build argument) for `/health/ready`
 * on its port (its port variable, else its default). Exit 0 when it answers 2xx within 2.5 s, else 1.
 */
import { SERVICES } from '../topology/index.ts';

const name = process.env.CIVILDIY_SERVICE;
const service = SERVICES.find((candidate) => candidate.name === name);
if (!service) {
  console.error(`CIVILDIY_SERVICE=${name ?? ''} names no service (${SERVICES.map((candidate) => candidate.name).join(', ')})`);
  process.exit(1);
}
const port = process.env[service.portVariable] || String(service.ports[0]);
try {
  const response = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(2_500) });
  process.exit(response.ok ? 0 : 1);
} catch {
  process.exit(1);
}
