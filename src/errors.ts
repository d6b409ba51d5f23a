/**
 * The program's own errors, each carrying the exit code it means (API errors stay in src/alliance).
 * Only src/main.ts turns them into a process exit; everything else throws or returns a code.
 *
 * Exit codes mean one thing each (README "Exit codes"; `payouts --help`):
 */
export const EXIT = {
  /** Every row paid (or, for other commands, success). */
  ok: 0,
  /** Finished, with rows not paid (invalid, rejected, failed, needs review, cancelled). */
  unpaidRows: 1,
  /** Usage, configuration or input error: fix the command, the settings or the file. */
  usage: 2,
  /** Refused before sending anything (not confirmed, short balance, conflicts, duplicate file…). */
  refused: 3,
  /** Unfinished: rows still awaiting an outcome or not sent yet; `payouts resume <batch>` carries on. */
  unfinished: 4,
  /** Another process holds the batch or the database. */
  busy: 5,
  /** The API is unreachable or refuses the credentials. */
  apiUnavailable: 6,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODE_HELP: ReadonlyArray<[ExitCode, string]> = [
  [EXIT.ok, 'every row paid (other commands: success)'],
  [EXIT.unpaidRows, 'finished, with rows not paid (invalid, rejected, failed, needs review, cancelled)'],
  [EXIT.usage, 'usage, configuration or input error'],
  [EXIT.refused, 'refused before sending anything (not confirmed, short balance, conflicts, duplicate file)'],
  [EXIT.unfinished, 'unfinished: run `payouts resume <batch>` to carry on'],
  [EXIT.busy, 'another process holds the batch or the database'],
  [EXIT.apiUnavailable, 'the API is unreachable or refuses the credentials'],
];

/** A program error: a message a person can act on, and the exit code it means. */
export abstract class ProgramError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Options that cannot work together, a missing argument, an unknown batch: exit 2. */
export class UsageError extends ProgramError {
  readonly exitCode = EXIT.usage;
}

/** Settings missing or malformed (flags, environment, configuration file): exit 2. */
export class ConfigError extends ProgramError {
  readonly exitCode = EXIT.usage;
}

/**
 * A problem with the input as a whole (file missing, not CSV, header unusable, damaged or unfinished):
 * nothing in it can be trusted row by row. Row-level problems are never thrown; they are collected on
 * the row. Exit 2.
 */
export class InputError extends ProgramError {
  readonly exitCode = EXIT.usage;
}

/** No such batch: exit 2. */
export class BatchNotFoundError extends ProgramError {
  readonly exitCode = EXIT.usage;
}

/**
 * Who may do what (maker-checker): an unknown or disabled user, a wrong password, a role that may not do it,
 * an uploader approving their own batch. Exit 2: the command cannot be done as given. `status` is the HTTP
 * answer the console gives (401: not who they say; 403: not allowed).
 */
export class AccessError extends ProgramError {
  readonly exitCode = EXIT.usage;
  constructor(
    message: string,
    readonly status: 401 | 403 = 403,
  ) {
    super(message);
  }
}

/** Refused before sending anything: exit 3. */
export class RefusedError extends ProgramError {
  readonly exitCode = EXIT.refused;
}

/**
 * The confirmation was not answered by a person: the program was stopped while it asked (SIGTERM, a
 * hangup, a closed output). Nothing is sent, and no decline is recorded: nobody said no.
 */
export class NoAnswerError extends Error {}

/** Another process holds the batch or the (embedded) database: exit 5. */
export class BusyError extends ProgramError {
  readonly exitCode = EXIT.busy;
}

/** The API cannot be reached, or refuses our credentials: exit 6. */
export class ApiUnavailableError extends ProgramError {
  readonly exitCode = EXIT.apiUnavailable;
}

/** The database cannot be opened or used (not a lock: see BusyError): exit 2 (fix the setting). */
export class DatabaseError extends ProgramError {
  readonly exitCode = EXIT.usage;
}
