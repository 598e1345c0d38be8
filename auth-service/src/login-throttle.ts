import { ServiceUnavailableError, TooManyRequestsError } from '@civildiy/common';
import type { AccountBackoff } from './account-backoff.ts';
import type { FailureWindow } from './failure-window.ts';

/** Who is trying to log in. */
export type LoginClient =
  /** A client that presented a valid device token of the account it logs in to: the token's device. */
  | { device: string }
  /** Any other client: the login name as typed (case-insensitive) and the client address. */
  | { login: string; address: string };

/** An admitted login attempt. It was counted as a failure when admitted; report a success to take that back. */
export interface AdmittedLogin {
  succeeded(): Promise<void>;
}

/** The counters {@link LoginThrottle} applies, each in Redis under the service's key prefix. */
export interface LoginLimits {
  /** Failures per client address. */
  addresses: FailureWindow;
  accounts: AccountBackoff;
  /** Failures per device token's device (locked a window once over the limit). */
  devices: FailureWindow;
}

/**
 * Decides whether a login attempt may check its password, following OWASP's "device cookies"
 * scheme with a growing wait instead of a lock for unknown clients:
 * - a client with a valid device token of the account is limited per device only, so failures
 *   elsewhere never keep the owner's devices out, and a stolen token is locked after a few guesses;
 * - any other client is limited per address and made to wait per account (the login name, whether
 *   or not it exists, so the answer does not reveal accounts).
 * Over a limit: 429 `auth.too_many_attempts` with `Retry-After`. Without Redis: 503
 * `auth.throttle_unavailable`, since guessing would otherwise be unlimited.
 */
export class LoginThrottle {
  constructor(private readonly limits: LoginLimits) {}

  /** Admits the attempt or throws 429 / 503. */
  async admit(client: LoginClient): Promise<AdmittedLogin> {
    return 'device' in client ? this.admitDevice(client.device) : this.admitUnknownClient(normalizedLogin(client.login), client.address);
  }

  private async admitDevice(device: string): Promise<AdmittedLogin> {
    const { devices } = this.limits;
    const wait = await guard(() => devices.take(device));
    if (wait > 0) throw tooManyAttempts(wait);
    // A success on a known device leaves the account's wait alone: guessing elsewhere may go on.
    return { succeeded: () => guard(() => devices.clear(device)) };
  }

  private async admitUnknownClient(account: string, address: string): Promise<AdmittedLogin> {
    const { addresses, accounts } = this.limits;
    const addressWait = await guard(() => addresses.take(address));
    if (addressWait > 0) throw tooManyAttempts(addressWait);
    const accountWait = await guard(() => accounts.take(account));
    if (accountWait > 0) {
      // Turned away unchecked: no guess was made from this address.
      await guard(() => addresses.giveBack(address));
      throw tooManyAttempts(accountWait);
    }
    return {
      succeeded: async () => {
        await guard(() => Promise.all([accounts.clear(account), addresses.giveBack(address)]));
      },
    };
  }
}

const normalizedLogin = (login: string) => login.trim().toLowerCase();

async function guard<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    // Fail closed: without the counters, guessing would be unlimited.
    throw new ServiceUnavailableError('Login is temporarily unavailable', 'auth.throttle_unavailable', { cause: error });
  }
}

function tooManyAttempts(waitMs: number): TooManyRequestsError {
  return new TooManyRequestsError(waitMs / 1000, 'Too many failed login attempts; try again later', 'auth.too_many_attempts');
}
