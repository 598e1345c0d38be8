import { randomBytes } from 'node:crypto';
import * as argon2 from 'argon2';

/** argon2id cost parameters. */
export interface PasswordHashingOptions {
  memoryKib: number;
  timeCost: number;
  parallelism: number;
}

/**
 * argon2id hashing. Hashes are PHC strings carrying their own parameters, so raising the cost
 * later still verifies old hashes; {@link needsRehash} says when to upgrade one after a login.
 */
export class Passwords {
  private readonly dummyHash: Promise<string>;

  constructor(private readonly options: PasswordHashingOptions) {
    // Made up front, so the first unknown login is not slower than the others.
    this.dummyHash = this.hash(randomBytes(32).toString('base64url'));
    this.dummyHash.catch(() => undefined);
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: this.options.memoryKib,
      timeCost: this.options.timeCost,
      parallelism: this.options.parallelism,
    });
  }

  /** Whether `password` matches `hash`. A malformed hash counts as no match. */
  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }

  /**
   * Spends the same work as a real verification and answers false: used for an unknown login, so
   * its answer takes as long as a wrong password's and does not reveal which accounts exist.
   */
  async verifyAgainstDummy(password: string): Promise<false> {
    await this.verify(await this.dummyHash, password);
    return false;
  }

  needsRehash(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, {
        memoryCost: this.options.memoryKib,
        timeCost: this.options.timeCost,
        parallelism: this.options.parallelism,
      });
    } catch {
      return false;
    }
  }
}
