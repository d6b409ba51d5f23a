import { EventEmitter } from 'node:events';
import type { Actor } from '../engine/access.js';
import type { EngineDeps, EngineOptions } from '../engine/context.js';
import { cancelBatch } from '../engine/decisions.js';
import { reconcileBatch } from '../engine/reconcile.js';
import { runBatch, type RunEvent, type RunOptions } from '../engine/run.js';
import { BusyError, UsageError } from '../errors.js';

/** How the console runs batches: the same engine calls as `payouts resume`, `cancel` and `reconcile`. */
export interface RunSettings {
  /** Where the reports go. */
  reportDir: string;
  /** Follow sent payouts this long after the last send. Default 10 minutes. */
  pollTimeoutMs?: number | undefined;
  /** Reconcile: rows unresolved this long after they were sent move to needs_review. Default 1 hour. */
  reviewAfterMs?: number | undefined;
  reportTimeZone?: string | undefined;
  /** Engine knobs (rate, polling; tests make them fast). */
  engine?: Partial<EngineOptions> | undefined;
}

/** What a page watching a batch is told, besides the counts it reads every second. */
export type ConsoleEvent =
  | { type: 'started'; what: Job['what'] }
  | { type: 'run'; event: RunEvent }
  | { type: 'finished'; what: Job['what']; exitCode: number; message: string }
  | { type: 'failed'; what: Job['what']; message: string };

interface Job {
  what: 'run' | 'cancel' | 'reconcile';
  by: string;
  startedAt: Date;
  done: Promise<void>;
}

export interface LastRun {
  what: Job['what'];
  by: string;
  exitCode: number;
  message: string;
  at: Date;
}

/**
 * The batches this console process is working on: at most one job (a run, a cancel, a reconcile) per batch
 * at a time, in the background, the request that started it answered at once. On the embedded database the
 * console must be the runner (it holds the database); on PostgreSQL other runners may work on the same
 * batch too, the engine's claims and leases keep every payout sent once.
 */
export class Runs {
  private readonly jobs = new Map<string, Job>();
  private readonly last = new Map<string, LastRun>();
  private readonly hub = new EventEmitter();
  private readonly stop = new AbortController();
  /** The API's trouble now, per batch (api_trouble until api_ok). */
  private readonly trouble = new Map<string, string>();

  constructor(
    private readonly deps: EngineDeps,
    private readonly settings: RunSettings,
  ) {
    this.hub.setMaxListeners(0);
  }

  running(batch: string): Job['what'] | undefined {
    return this.jobs.get(batch)?.what;
  }
  lastOf(batch: string): LastRun | undefined {
    return this.last.get(batch);
  }
  troubleOf(batch: string): string | undefined {
    return this.trouble.get(batch);
  }

  /** Listens to one batch's events; returns the unsubscribe. */
  subscribe(batch: string, fn: (e: ConsoleEvent) => void): () => void {
    this.hub.on(batch, fn);
    return () => this.hub.off(batch, fn);
  }

  /** Starts a job on the batch unless one is running (then a UsageError: 409 in the console). */
  start(batch: string, what: Job['what'], actor: Actor): void {
    if (this.stop.signal.aborted) throw new UsageError('the console is shutting down: nothing new is started');
    const busy = this.jobs.get(batch);
    if (busy) throw new BusyError(`batch "${batch}" is already being worked on here (${busy.what}, started by ${busy.by}): wait for it to finish`);
    const emit = (e: ConsoleEvent) => this.hub.emit(batch, e);
    const onEvent = (e: RunEvent) => {
      if (e.type === 'api_trouble') this.trouble.set(batch, e.message);
      if (e.type === 'api_ok') this.trouble.delete(batch);
      emit({ type: 'run', event: e });
    };
    const deps: EngineDeps = { ...this.deps, onEvent };
    const s = this.settings;
    const base: RunOptions = {
      ...s.engine,
      batch,
      reportDir: s.reportDir,
      reportTimeZone: s.reportTimeZone,
      stopSignal: this.stop.signal,
      actor,
      onEvent,
      ...(s.pollTimeoutMs !== undefined ? { pollTimeoutMs: s.pollTimeoutMs } : {}),
    };
    const work = async (): Promise<{ exitCode: number; message: string }> => {
      if (what === 'run') return runBatch({ ...base, yes: false }, deps);
      if (what === 'cancel') return cancelBatch(base, deps);
      const r = await reconcileBatch({ ...s.engine, batch, stopSignal: this.stop.signal, ...(s.reviewAfterMs !== undefined ? { reviewAfterMs: s.reviewAfterMs } : {}) }, deps);
      return { exitCode: 0, message: `${r.checked} rows checked against the API, ${r.agreed} agree, ${r.findings.length} findings` };
    };
    emit({ type: 'started', what });
    const done = work()
      .then((r) => {
        this.last.set(batch, { what, by: actor.name, exitCode: r.exitCode, message: r.message, at: new Date() });
        emit({ type: 'finished', what, exitCode: r.exitCode, message: r.message });
      })
      .catch((err: unknown) => {
        const message = (err as Error).message;
        this.deps.logger.error({ err: message, batch, what }, 'a console job failed');
        this.last.set(batch, { what, by: actor.name, exitCode: (err as { exitCode?: number }).exitCode ?? 4, message, at: new Date() });
        emit({ type: 'failed', what, message });
      })
      .finally(() => {
        this.jobs.delete(batch);
        this.trouble.delete(batch);
      });
    this.jobs.set(batch, { what, by: actor.name, startedAt: new Date(), done });
  }

  /** Waits for every job (e.g. a test waiting for a run to end). */
  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs.values()].map((j) => j.done));
  }

  /** A graceful stop, as Ctrl-C of `payouts run`: no new sends, those in flight finish, reports are written. */
  async close(): Promise<void> {
    this.stop.abort();
    await this.idle();
  }
}
