import { setMaxListeners } from 'node:events';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import PQueue from 'p-queue';
import type { AllianceClient, CallOptions } from '../alliance/client.js';
import { AllianceError, MalformedResponseError, NetworkError, RateLimitError, ServerError, TimeoutError } from '../alliance/errors.js';
import { splitLanes, type RateGate } from '../alliance/gate.js';
import { budgetIsShared, gateFor } from './budget.js';
import type { BackoffOptions } from '../alliance/retry.js';
import { CrashError, type CrashHook, type CrashPoint } from './crash.js';
import type { RunEvent } from './events.js';
import { newOwner } from './owner.js';
import { PollSchedule } from './schedule.js';

/** Knobs of the engine. Every default is what an unattended payroll run should do. */
export interface EngineOptions {
  /** API requests per second, initiate and status together. Default 5. */
  rate: number;
  /**
   * Added to the rate gate's one-second window to absorb the jitter between a request leaving and the
   * server counting it (alliance/gate.ts): R requests per 1000 + margin ms. Default 40; raise it when a
   * long or uneven network path meets 429s at --rate below the API's limit.
   */
  rateMarginMs: number;
  /** API requests in flight at once. Default 4. */
  concurrency: number;
  /** How long a runner holds a claimed row before another runner may take it over. Default 120000. */
  leaseMs: number;
  /** The client's per-request timeout; a send starts only if it can finish inside the lease. Default 30000. */
  requestTimeoutMs: number;
  /** Slack kept between the end of a send's timeout and the end of its lease (clock drift, DB latency). Default 1000. */
  leaseMarginMs: number;
  /**
   * How long after the last moment a request could have been sent a 404 from status is trusted to mean
   * "never created" (a server may still be processing a request whose connection died, long after our
   * timeout). Keep it well above the longest the API can take to execute a request it received; beyond
   * that, exactly-once rests on the API refusing a repeated order_id (README). Default 60000 (twice the
   * request timeout).
   */
  ambiguousGraceMs: number;
  /** Sends of one order_id (each after a status 404) before leaving it for an operator. Default 3. */
  maxSendsPerRow: number;
  /** First wait before polling a pending payout; grows 1.5x per poll up to pollMaxIntervalMs. Default 2000. */
  pollIntervalMs: number;
  /** Default 60000. */
  pollMaxIntervalMs: number;
  /**
   * With webhooks: how long a pending payout waits for its webhook before the first status check, until
   * the run has seen enough webhooks to learn how long its payouts take (engine/schedule.ts). Default 30000.
   */
  webhookWaitMs: number;
  /**
   * Fraction of the rate that lookups prompted by webhooks (payin hints; every lookup of `payouts
   * webhooks`) may take while payouts and polls want slots (alliance/gate.ts splitLanes). Default 0.2.
   */
  hintShare: number;
  /** Backoff for retryable, unambiguous errors. */
  retry: BackoffOptions;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  rate: 5,
  rateMarginMs: 40,
  concurrency: 4,
  leaseMs: 120_000,
  requestTimeoutMs: 30_000,
  leaseMarginMs: 1_000,
  ambiguousGraceMs: 60_000,
  maxSendsPerRow: 3,
  pollIntervalMs: 2_000,
  pollMaxIntervalMs: 60_000,
  webhookWaitMs: 30_000,
  hintShare: 0.2,
  retry: { retries: 5, baseMs: 500, maxMs: 30_000 },
};

/** What the engine needs from outside; a CLI, a watcher, a webhook receiver or a web console passes these. */
/** What a failure says about the API, in words a person watching understands; undefined for a definite answer. */
function troubleOf(err: unknown): string | undefined {
  if (err instanceof RateLimitError) return 'the API is answering 429 (too many requests): sending waits and slows down; nothing is lost or sent twice';
  if (err instanceof ServerError) return `the API answered ${err.statusCode ?? '5xx'}: retrying (an initiate is asked about before it is ever sent again)`;
  if (err instanceof TimeoutError) return 'the API did not answer in time: retrying (an initiate is asked about before it is ever sent again)';
  if (err instanceof NetworkError || err instanceof MalformedResponseError) return `the API cannot be reached properly (${err.message.slice(0, 80)}): retrying`;
  return undefined;
}

export interface EngineDeps {
  db: Knex;
  client: AllianceClient;
  logger: Logger;
  /** Crash-test hook (issue 4); absent in production. */
  crash?: CrashHook | undefined;
  /** Progress for whoever watches (a terminal, a web page); the engine never prints. */
  onEvent?: ((e: RunEvent) => void) | undefined;
  /** The rate gate to use (several runners in one process sharing one budget); default: one per runner. */
  gate?: RateGate | undefined;
}

/** One runner's live state: its identity, its rate-limited queue, and the switch that kills it. */
export class Runner {
  readonly owner: string;
  readonly queue: PQueue;
  /** The rate gate of payouts, polls and the balance check. */
  readonly gate: RateGate;
  /** The same budget's lane for lookups prompted by webhooks: a share of the rate while `gate` is busy. */
  readonly hintGate: RateGate;
  /** When pending payouts are asked about (webhooks make polling the fallback). */
  readonly schedule: PollSchedule;
  readonly options: EngineOptions;
  /** False for a cancelled batch: rows in flight are resolved, nothing new is sent. */
  mayInitiate = true;
  /** The run was refused because the approval policy is not met yet (the inbox keeps such a file to be paid once approved). */
  awaitingApproval = false;
  /**
   * An operator's stop (Ctrl-C, SIGTERM, a closed output), while sending: a claimed row whose request has
   * not left yet (waiting in the queue or for its rate slot) goes back unsent instead of being sent.
   */
  stopSending: AbortSignal | undefined;
  /** With the approval policy on: the revision (and file) the approvals were for; only its rows are claimed. */
  approvedRevision: { revision: number; sha256: string } | undefined;
  /** The wait for the grace period (a 404 not trusted yet) was logged once this run. */
  saidGraceWait = false;
  private readonly dead = new AbortController();

  constructor(
    readonly deps: EngineDeps,
    options: Partial<EngineOptions> = {},
  ) {
    this.options = { ...DEFAULT_ENGINE_OPTIONS, ...options, retry: { ...DEFAULT_ENGINE_OPTIONS.retry, ...options.retry } };
    if (!(this.options.rate > 0)) throw new RangeError('rate must be > 0 requests per second');
    if (!(this.options.concurrency >= 1)) throw new RangeError('concurrency must be >= 1');
    if (this.options.requestTimeoutMs + 2 * this.options.leaseMarginMs >= this.options.leaseMs) {
      throw new RangeError(
        `the lease (${this.options.leaseMs} ms) must exceed the request timeout (${this.options.requestTimeoutMs} ms) by more than twice the lease margin (${this.options.leaseMarginMs} ms)`,
      );
    }
    // Every in-flight request listens on the kill switch: as many listeners as the concurrency, not a leak.
    setMaxListeners(0, this.dead.signal);
    // The owner names this process so a later run on this host can tell that it died.
    this.owner = newOwner();
    // The queue bounds requests in flight; the rate is governed at the wire by the gate (one budget per API
    // account, shared through PostgreSQL by every runner on it).
    this.queue = new PQueue({ concurrency: this.options.concurrency });
    if (!(this.options.rateMarginMs >= 0 && this.options.rateMarginMs <= 1000)) throw new RangeError('the rate margin must be 0 to 1000 ms');
    const gate = deps.gate ?? gateFor(deps.db, deps.client.accountKey(), this.options.rate, deps.logger, this.options.rateMarginMs);
    // A gate given from outside is shared with other runners, and a PostgreSQL budget with other processes:
    // what they want is not visible here, so the hint lane keeps to its share even when this runner is idle.
    const lanes = splitLanes(gate, {
      rate: this.options.rate,
      marginMs: this.options.rateMarginMs,
      share: this.options.hintShare,
      alwaysCap: deps.gate !== undefined || budgetIsShared(deps.db),
    });
    this.gate = lanes.main;
    this.hintGate = lanes.hints;
    this.schedule = new PollSchedule(this.options);
  }

  /** Options for every API call of this runner: its kill switch and its rate gate. */
  get call(): CallOptions {
    return { signal: this.dead.signal, gate: this.gate };
  }

  get db(): Knex {
    return this.deps.db;
  }
  get client(): AllianceClient {
    return this.deps.client;
  }
  get logger() {
    return this.deps.logger;
  }
  emit(e: RunEvent): void {
    this.deps.onEvent?.(e);
  }

  private trouble: string | undefined;
  /** An answer from the API (any that is not a failure to reach it or a 429/5xx): trouble is over. */
  private apiAnswered(): void {
    if (this.trouble === undefined) return;
    this.trouble = undefined;
    this.emit({ type: 'api_ok' });
  }
  /** A failure worth showing: 429s, 5xx, no answer. Said once per kind of trouble, not once per request. */
  private apiFailed(err: unknown): void {
    const msg = troubleOf(err);
    if (msg === undefined) {
      // A definite answer (a refusal, a 404): the API is there.
      if (err instanceof AllianceError) this.apiAnswered();
      return;
    }
    if (msg === this.trouble) return;
    this.trouble = msg;
    this.emit({ type: 'api_trouble', message: msg });
  }

  private claimedNow = 0;
  private onWireNow = 0;
  /** A claimed row started (or ended) its work here: for the honest "sending" count of a watcher. */
  claimStarted(): void {
    this.claimedNow++;
    this.emit({ type: 'wire', claimed: this.claimedNow, onWire: this.onWireNow });
  }
  claimEnded(): void {
    this.claimedNow--;
    this.emit({ type: 'wire', claimed: this.claimedNow, onWire: this.onWireNow });
  }
  /** A request of a claimed row was handed to the connection (and later answered, or given up). */
  wireStarted(): void {
    this.onWireNow++;
    this.emit({ type: 'wire', claimed: this.claimedNow, onWire: this.onWireNow });
  }
  wireEnded(): void {
    this.onWireNow--;
    this.emit({ type: 'wire', claimed: this.claimedNow, onWire: this.onWireNow });
  }

  private wakers = new Set<() => void>();
  /** Something changed outside the poll schedule (a webhook's status check finished a row): look again. */
  wake(): void {
    for (const w of this.wakers) w();
    this.wakers.clear();
  }
  /** Resolves after `ms`, or earlier on wake(). Rejects when the runner is killed. */
  async nap(ms: number, stop?: AbortSignal): Promise<void> {
    if (this.dead.signal.aborted) throw this.dead.signal.reason as Error;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        this.dead.signal.removeEventListener('abort', onDead);
        stop?.removeEventListener('abort', done);
        resolve();
      };
      const onDead = () => {
        done();
        reject(this.dead.signal.reason);
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
      this.dead.signal.addEventListener('abort', onDead, { once: true });
      stop?.addEventListener('abort', done, { once: true });
    });
  }
  /** Aborted when the runner is killed (simulated crash): in-flight requests die with it. */
  get signal(): AbortSignal {
    return this.dead.signal;
  }

  /** Passes a crash point; a crash kills the runner: nothing after it may touch the database. */
  checkpoint(point: CrashPoint, orderId: string): void {
    this.assertAlive();
    try {
      this.deps.crash?.(point, orderId);
    } catch (err) {
      if (err instanceof CrashError) this.kill(err);
      throw err;
    }
  }

  kill(reason: Error): void {
    // Queued calls are not dropped (a dropped p-queue task never settles and its caller would hang):
    // the signal rejects them before they start.
    if (!this.dead.signal.aborted) this.dead.abort(reason);
  }

  assertAlive(): void {
    if (this.dead.signal.aborted) throw this.dead.signal.reason as Error;
  }

  /** Runs one API call in the shared rate-limited queue; trouble with the API is told to whoever watches. */
  api<T>(fn: () => Promise<T>): Promise<T> {
    this.assertAlive();
    return this.queue.add(
      async () => {
        this.assertAlive();
        try {
          const v = await fn();
          this.apiAnswered();
          return v;
        } catch (err) {
          this.apiFailed(err);
          throw err;
        }
      },
      { signal: this.dead.signal },
    ) as Promise<T>;
  }
}
