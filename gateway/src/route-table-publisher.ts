import type { Logger } from '@civildiy/common';
import { replaceKvTree, type ConsulClient } from '@civildiy/common/discovery';
import type { Closable } from '@civildiy/common/runtime';
import { SERVICES, composeUpstreamUrls, traefikDynamicConfig, traefikKvEntries } from '@civildiy/common/topology';

/** Options of {@link RouteTablePublisher}. */
export interface RouteTablePublisherOptions {
  client: ConsulClient;
  logger: Logger;
  /** The KV folder Traefik's KV provider reads (its `rootKey`). Default `traefik`. */
  rootKey?: string;
  /** First wait after a failed attempt (ms); doubles up to 30 s. Default 500. */
  retryMs?: number;
}

/**
 * Publishes the gateway's route table to Consul's KV store in Traefik's KV layout (the same
 * configuration as `deploy/traefik/dynamic.yml`, upstreams by their Compose names), so a Traefik with
 * the Consul KV provider routes as the gateway does. Runs once per gateway start, in the background:
 * a Consul that does not answer yet is tried again with backoff until it does or the gateway stops.
 */
export class RouteTablePublisher implements Closable {
  private readonly stop = new AbortController();
  /** Settles once the table is published, or the publisher was closed first. */
  readonly published: Promise<boolean>;

  constructor(private readonly options: RouteTablePublisherOptions) {
    this.published = this.publish();
  }

  private async publish(): Promise<boolean> {
    const entries = traefikKvEntries(traefikDynamicConfig({ upstreamUrl: composeUpstreamUrls(SERVICES) }), this.options.rootKey ?? 'traefik');
    let waitMs = this.options.retryMs ?? 500;
    for (let attempt = 1; !this.stop.signal.aborted; attempt++) {
      try {
        const written = await replaceKvTree(this.options.client, this.options.rootKey ?? 'traefik', entries);
        this.options.logger.info(written, 'route table published to Consul KV for Traefik');
        return true;
      } catch (error) {
        if (attempt === 1) this.options.logger.warn({ err: error }, 'publishing the route table to Consul KV failed; trying again in the background');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          this.stop.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        waitMs = Math.min(waitMs * 2, 30_000);
      }
    }
    return false;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.published;
  }
}
