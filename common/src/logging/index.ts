import pino, { type Logger, type LoggerOptions } from 'pino';
import { currentContext } from '../context/index.ts';

export type { Logger } from 'pino';

/** Options of {@link createLogger}. */
export interface LoggerSettings {
  /** Service name, written on every line as `service`. */
  service: string;
  /** pino level. Default: `LOG_LEVEL` or `info`. */
  level?: string;
  /**
   * Human-readable output through pino-pretty. Default: when `LOG_FORMAT` is `pretty`, or stdout is a
   * terminal and `LOG_FORMAT` is not `json`.
   */
  pretty?: boolean;
  /** Where to write (tests). Default: stdout. */
  destination?: pino.DestinationStream;
}

/**
 * A JSON logger whose every line carries `service`, and `correlationId`/`userId` from the
 * current {@link RequestContext} when there is one.
 */
export function createLogger(settings: LoggerSettings): Logger {
  const format = process.env.LOG_FORMAT;
  const pretty = settings.pretty ?? (format === 'pretty' || (process.stdout.isTTY === true && format !== 'json'));
  const options: LoggerOptions = {
    level: settings.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: settings.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const context = currentContext();
      if (!context) return {};
      return context.userId
        ? { correlationId: context.correlationId, userId: context.userId }
        : { correlationId: context.correlationId };
    },
    redact: { paths: ['req.headers.authorization', 'password', '*.password', 'refreshToken', '*.refreshToken'], censor: '[redacted]' },
  };
  if (settings.destination) return pino(options, settings.destination);
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname' } } });
  }
  return pino(options);
}
