import { pino, type Logger, type DestinationStream } from 'pino';
import { maskUrl } from './maskUrl.js';

export { maskUrl };

/**
 * Paths pino censors wherever they appear. Keys and signatures must never reach a log; account numbers
 * and contact details are personal data. Anything logged about a row goes through `maskAccount`.
 */
export const REDACT_PATHS = [
  'accessKey',
  'secretKey',
  'signature',
  'headers.signature',
  'headers["access-key"]',
  'headers.timestamp',
  'req.headers.signature',
  'req.headers["access-key"]',
  '*.accessKey',
  '*.secretKey',
  '*.signature',
  'accountNumber',
  '*.accountNumber',
  'beneficiary_acc_no',
  '*.beneficiary_acc_no',
  'beneficiary_mobile_no',
  '*.beneficiary_mobile_no',
  'beneficiary_email',
  '*.beneficiary_email',
  'databaseUrl',
  '*.databaseUrl',
];

export interface LogOptions {
  level?: string;
  /** Defaults to stderr: results go to stdout, logs never mix into them. */
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: undefined,
    },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** "123456789012" -> "XXXXXXXX9012". Short values are masked whole. */
export function maskAccount(acc: string | null | undefined): string {
  if (!acc) return '';
  if (acc.length <= 4) return 'X'.repeat(acc.length);
  return 'X'.repeat(acc.length - 4) + acc.slice(-4);
}

