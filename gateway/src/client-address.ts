import type { FastifyRequest } from 'fastify';

/** Who sent a request, as the gateway tells the upstream in `X-Forwarded-*`. */
export interface ClientOrigin {
  /** The client's address: the rate-limit key and the last entry of `X-Forwarded-For`. */
  address: string;
  /** The `X-Forwarded-For` value to send on. */
  forwardedFor: string;
  /** `http` or `https`, as the client used it. */
  proto: string;
  /** The host the client asked for. */
  host: string | undefined;
}

function normalise(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Works out the client behind a request. The gateway is the edge unless the connection comes from one
 * of `trustedProxies`: then the client is the right-most `X-Forwarded-For` entry that is not itself a
 * trusted proxy, and the proxy's `X-Forwarded-Proto`/`-Host` are kept. Otherwise whatever the client
 * wrote in `X-Forwarded-*` is discarded, so it can neither pick its own rate-limit key nor make a
 * service (which trusts the gateway) believe another address.
 */
export class ClientAddresses {
  private readonly trusted: ReadonlySet<string>;

  constructor(trustedProxies: readonly string[]) {
    this.trusted = new Set(trustedProxies.map((address) => normalise(address)));
  }

  /** The origin of `request`. */
  of(request: FastifyRequest): ClientOrigin {
    const peer = normalise(request.raw.socket.remoteAddress);
    const encrypted = (request.raw.socket as { encrypted?: boolean }).encrypted === true;
    const ownProto = encrypted ? 'https' : 'http';
    if (this.trusted.size === 0 || !this.trusted.has(peer)) {
      return { address: peer, forwardedFor: peer, proto: ownProto, host: request.headers.host };
    }
    const incoming = request.headers['x-forwarded-for'];
    const chain = (Array.isArray(incoming) ? incoming.join(',') : (incoming ?? ''))
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean);
    let address = peer;
    for (let i = chain.length - 1; i >= 0; i--) {
      address = normalise(chain[i]);
      if (!this.trusted.has(address)) break;
    }
    return {
      address,
      forwardedFor: [...chain, peer].join(', '),
      proto: single(request.headers['x-forwarded-proto']) ?? ownProto,
      host: single(request.headers['x-forwarded-host']) ?? request.headers.host,
    };
  }
}
