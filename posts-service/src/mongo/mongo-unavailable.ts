import {
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import { ServiceUnavailableError } from '@civildiy/common';

/**
 * Server error codes meaning "not now, try again" rather than "not this": the primary is stepping
 * down or being elected, the server is shutting down, a host is unreachable.
 */
const UNAVAILABLE_CODES = new Set([6, 7, 89, 91, 189, 10107, 11600, 11602, 13435, 13436]);

/** Whether `error` means MongoDB could not be reached or cannot take the operation right now (as opposed to refusing it). */
export function isMongoUnavailable(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoNotConnectedError || error instanceof MongoTopologyClosedError) return true;
  return error instanceof MongoError && typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code);
}

/**
 * Runs a database operation, turning "MongoDB is unreachable" into the platform's retryable `503
 * database.unavailable` (as the Postgres store's errors are), so a client or a job retries.
 */
export async function mongoOperation<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isMongoUnavailable(error)) {
      throw new ServiceUnavailableError('The database is unavailable; retry shortly', 'database.unavailable', { retryAfterSeconds: 1, cause: error });
    }
    throw error;
  }
}
