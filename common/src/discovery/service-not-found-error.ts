/** Raised by `ServiceDiscovery.resolve` when no instance of a service is known. */
export class ServiceNotFoundError extends Error {
  /** The service that was asked for. */
  readonly service: string;

  constructor(service: string, message = `No instance of ${service} is known`) {
    super(message);
    this.name = 'ServiceNotFoundError';
    this.service = service;
  }
}
