/** A tile per service: its light (with words and a shape, not colour alone), what fails, and vitals. */
import type { Light, ServiceStatus } from './api-types.ts';
import { bytes, count, duration, fullTime, timeOfDay } from './format.ts';
import { Placeholder } from './panel.tsx';

const LIGHT_WORDS: Record<Light, string> = { green: 'Healthy', amber: 'Degraded', red: 'Down' };

function lightReason(service: ServiceStatus): string | null {
  if (service.light === 'red') return service.error ?? 'not answering';
  if (service.light === 'amber') {
    if (!service.ready) return 'live, not ready';
    if (service.lastRestartAt) return `restarted at ${timeOfDay(service.lastRestartAt)}`;
  }
  return null;
}

function ServiceTile({ service }: { service: ServiceStatus }) {
  const light: Light = service.light === 'green' || service.light === 'amber' || service.light === 'red' ? service.light : 'red';
  const titleId = `service-${service.name}-title`;
  const reason = lightReason(service);
  return (
    <li>
      <article class={`tile tile-${light}`} data-testid={`service-${service.name}`} data-light={light} aria-labelledby={titleId}>
        <h3 id={titleId}>{service.name}</h3>
        <p class="tile-status">
          <span class={`light light-${light}`} data-testid={`service-${service.name}-light`}>
            <span class="light-mark" aria-hidden="true" />
            {LIGHT_WORDS[light]}
          </span>
          <span class="muted tile-role">{service.role}</span>
        </p>
        {reason && <p class="tile-reason">{reason}</p>}
        {service.failingChecks.length > 0 && (
          <ul class="failing-checks" aria-label="Failing checks">
            {service.failingChecks.map((check) => (
              <li key={check.name}>
                <strong>{check.name}</strong>: {check.error}
              </li>
            ))}
          </ul>
        )}
        <dl class="facts">
          <div>
            <dt>Uptime</dt>
            <dd>{duration(service.uptimeSeconds)}</dd>
          </div>
          <div>
            <dt>Memory</dt>
            <dd title={`heap used ${bytes(service.heapUsedBytes)}`}>{bytes(service.residentMemoryBytes)}</dd>
          </div>
          <div>
            <dt>Restarts</dt>
            <dd title={service.lastRestartAt ? `last at ${fullTime(service.lastRestartAt)}` : undefined}>{count(service.restarts)}</dd>
          </div>
        </dl>
      </article>
    </li>
  );
}

export function ServicesPanelBody({ services }: { services: ServiceStatus[] | null }) {
  if (services === null) return <Placeholder>Waiting for the first health check…</Placeholder>;
  if (services.length === 0) return <Placeholder>No services are known to the dashboard.</Placeholder>;
  return (
    <ul class="tiles">
      {services.map((service) => (
        <ServiceTile key={service.name} service={service} />
      ))}
    </ul>
  );
}

/** "9 of 10 healthy": the panel's summary. */
export function servicesSummary(services: ServiceStatus[] | null): string | null {
  if (!services || services.length === 0) return null;
  const healthy = services.filter((service) => service.light === 'green').length;
  return `${healthy} of ${services.length} healthy`;
}
