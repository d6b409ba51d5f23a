import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseLockFile } from '../db/dataDirLock.js';
import { isAlive, isLocalTag } from '../proc.js';
import { getBatch, listBatches, type BatchRecord } from '../db/batches.js';
import { countByState } from '../db/rows.js';
import { BatchNotFoundError, BusyError } from '../errors.js';
import { summarize } from '../report/report.js';
import { measure, newState, plainLine, readSnapshotFile, snapshotPath, terminalLines, writerAlive, durationText, type ProgressState } from '../cli/progress.js';
import { statusLines, summaryJson, unfinishedLines, type StatusTotalsLike } from '../cli/summary.js';
import { dataDirOf, note, printJson, withDb, type CommandIO } from './context.js';

export interface StatusOptions {
  /** Keep watching until the batch has nothing unfinished, or the run being watched ends (Ctrl-C stops watching). */
  follow?: boolean;
  /** How often --follow looks. Default 2000 ms. */
  intervalMs?: number;
}

/** `payouts status [batch]`: what the database knows, no API call; `--follow` watches a batch being paid. */
export async function statusCommand(io: CommandIO, batch: string | undefined, o: StatusOptions = {}): Promise<number> {
  if (!batch) return listCommand(io);
  if (o.follow) return follow(io, batch, o.intervalMs ?? 2000);
  // On the embedded database a run holds the database; its progress file says the same from outside.
  const live = embedded(io) ? liveSnapshot(io, batch) : undefined;
  if (live) {
    showSnapshot(io, live, true);
    return 0;
  }
  return withDb(io, async (db) => {
    const rec = await getBatch(db.knex, batch);
    if (!rec) throw notFound(batch);
    showStatus(io, rec, await summarize(db.knex, batch), await countByState(db.knex, batch));
    return 0;
  });
}

async function listCommand(io: CommandIO): Promise<number> {
  return withDb(io, async (db) => {
    const all = await listBatches(db.knex);
    if (io.json) {
      printJson(io, all.map((b) => ({ batch: b.name, revision: b.revision, state: batchState(b), created_at: b.created_at, finished_at: b.finished_at, decision: b.decision, cancelled_at: b.cancelled_at })));
    } else if (all.length === 0) io.out('No batches yet in this database: start one with `payouts run <csv>` (or check the database above is the one you meant)');
    else for (const b of all) io.out(`${b.name}  revision ${b.revision}  ${batchState(b)}  ${b.source_file}`);
    return 0;
  });
}

function batchState(b: BatchRecord): string {
  if (b.cancelled_at) return 'cancelled';
  if (b.finished_at) return 'finished';
  if (!b.ingest_complete) return 'not completely read';
  if (b.decision === 'declined') return 'declined at the prompt (open)';
  return 'open';
}

function notFound(batch: string): BatchNotFoundError {
  return new BatchNotFoundError(`no batch named "${batch}" in this database: \`payouts status\` lists them`);
}

function embedded(io: CommandIO): boolean {
  return !io.config.db.databaseUrl && dataDirOf(io) !== ':memory:';
}

/** The progress file of a run of this batch that is still going, if any. */
function liveSnapshot(io: CommandIO, batch: string): ProgressState | undefined {
  const s = readSnapshotFile(snapshotPath(dataDirOf(io), batch));
  return s && !s.done && writerAlive(s) ? s : undefined;
}

function showStatus(io: CommandIO, rec: BatchRecord, s: Awaited<ReturnType<typeof summarize>>, states: Record<string, number>): void {
  if (io.json) {
    printJson(io, { ...summaryJson(s), state: batchState(rec), decision: rec.decision, decided_at: rec.decided_at, cancelled_at: rec.cancelled_at, states });
    return;
  }
  io.out(`Batch ${rec.name}: ${s.rows} rows, revision ${rec.revision}, ${batchState(rec)}${s.finished_at ? ` ${s.finished_at}` : ''}`);
  for (const l of statusLines(s)) io.out(l);
  for (const l of unfinishedLines(s, rec.name)) io.out(l);
  if (rec.decision === 'declined') io.out(`Declined at the confirmation prompt: nothing is sent until someone confirms (\`payouts approve ${rec.name}\`, or answer y at a terminal).`);
}

/** Status from a running process's progress file (it holds the embedded database). */
function showSnapshot(io: CommandIO, s: ProgressState, running: boolean): void {
  const age = Math.max(0, Math.round((Date.now() - s.updated_at) / 1000));
  const pid = s.process.split(':')[1];
  const src = running ? `from the progress file of process ${pid} (${s.command}, running), updated ${age} s ago` : `from the progress file of the last ${s.command}`;
  if (io.json) {
    printJson(io, { batch: s.batch, source: 'progress_file', running, process_id: Number(pid), command: s.command, phase: s.phase, updated_at: new Date(s.updated_at).toISOString(), ...(s.statuses ? summaryJson(s.statuses) : {}), exit_code: s.exit_code, message: s.message });
    return;
  }
  io.out(`Batch ${s.batch} (${src}):`);
  if (s.statuses) {
    for (const l of statusLines(s.statuses)) io.out(l);
    if (s.done) for (const l of unfinishedLines(s.statuses, s.batch)) io.out(l);
  } else io.out(`  ${measure(s).label.toLowerCase()}; no counts yet`);
  if (s.done && s.message) io.out(`The ${s.command} ended${s.exit_code !== null && s.exit_code >= 0 ? ` (exit ${s.exit_code})` : ''}: ${s.message}`);
}

/**
 * Watches a batch from another terminal. PostgreSQL: reads the database every interval. The embedded
 * database: the running process holds it (one process at a time), so this reads the progress file that
 * process writes beside the database every second; it never holds the database while a run could need it.
 */
async function follow(io: CommandIO, batch: string, intervalMs: number): Promise<number> {
  return embedded(io) ? followEmbedded(io, batch, intervalMs) : followDb(io, batch, intervalMs);
}

function render(io: CommandIO, s: ProgressState, lastPlain: { at: number; text: string }): void {
  const now = Date.now();
  if (io.screen?.tty) {
    io.screen.status(terminalLines(s, now, io.screen.columns()));
    return;
  }
  const text = plainLine(s, now).replace(/ \[[^\]]*\]$/, '');
  // Without a terminal: a line when something changed, and every 10 s anyway.
  if (text !== lastPlain.text || now - lastPlain.at >= (io.progressEveryMs ?? 10_000)) {
    lastPlain.text = text;
    lastPlain.at = now;
    note(io, plainLine(s, now));
  }
}

async function pause(io: CommandIO, ms: number): Promise<boolean> {
  try {
    await sleep(ms, undefined, io.stopSignal ? { signal: io.stopSignal } : {});
    return true;
  } catch {
    return false;
  }
}

/** Who holds the embedded database now (read from its lock file, never taken): a live pid, or nobody. */
function lockHolder(dataDir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dataDir, 'lock'), 'utf8');
  } catch {
    return undefined;
  }
  const h = parseLockFile(text);
  if (!h) return undefined;
  // A holder on another host or pid namespace cannot be judged from here: taken as holding it.
  if (!isLocalTag(h.ref.tag)) return h.ref.pid;
  return isAlive(h.ref.pid, h.ref.startTime) ? h.ref.pid : undefined;
}

/**
 * The embedded database allows one process, and a run holds it from start to end: watching never opens
 * it (a watcher that held it for a moment could make a run starting just then exit 5). It reads the
 * progress file the run writes beside the database every second, and waits for one when none is there.
 */
async function followEmbedded(io: CommandIO, batch: string, intervalMs: number): Promise<number> {
  const dataDir = dataDirOf(io);
  const file = snapshotPath(dataDir, batch);
  const lastPlain = { at: 0, text: '' };
  let watched: ProgressState | undefined;
  let busySince: number | undefined;
  let waiting = false;
  for (;;) {
    const s = readSnapshotFile(file);
    const alive = s !== undefined && !s.done && writerAlive(s);
    if (s && alive) {
      if (!watched || watched.started_at !== s.started_at) {
        note(io, `Following batch ${batch}: process ${s.process.split(':')[1]} (${s.command}) holds the embedded database; reading its progress file ${file}. Ctrl-C stops watching (the run goes on).`);
      }
      watched = s;
      busySince = undefined;
      render(io, s, lastPlain);
      if (!(await pause(io, intervalMs))) return stopWatching(io);
      continue;
    }
    if (watched) {
      // The run we watched has ended: its last snapshot has the final counts.
      io.screen?.clearStatus();
      const last = s && s.started_at === watched.started_at ? s : watched;
      showSnapshot(io, last.done ? last : { ...last, done: true, message: 'the process ended without a final word (killed?): `payouts resume` carries on' }, false);
      return 0;
    }
    const holder = lockHolder(dataDir);
    if (holder === undefined) {
      if (s) {
        // Nothing runs now: the last run's final word is the batch's state (runs, cancels and reconciles write it).
        showSnapshot(io, s.done ? s : { ...s, done: true, message: 'the process ended without a final word (killed?): `payouts resume` carries on' }, false);
        if (!io.json) io.out(`No run is working on batch ${batch} now; \`payouts status ${batch}\` reads the database.`);
        return 0;
      }
      if (!waiting) {
        note(io, `No run of batch ${batch} is going on in ${dataDir}; waiting for one to start (Ctrl-C stops watching). \`payouts status ${batch}\` shows what is stored.`);
        waiting = true;
      }
      busySince = undefined;
    } else {
      // A run that has just taken the database writes its progress file a moment later.
      busySince ??= Date.now();
      if (Date.now() - busySince > Math.max(5000, 2 * intervalMs)) {
        throw new BusyError(
          `the embedded database in ${dataDir} is in use by process ${holder}, and no run of batch "${batch}" writes progress there: that process works on another batch, or is another command that ends soon (try again then). ` +
            `To watch a batch, start \`payouts status ${batch} --follow\` while \`payouts run\`/\`resume\` of that batch runs (PGlite allows one process; to watch from other machines, use PostgreSQL: DATABASE_URL).`,
        );
      }
    }
    if (!(await pause(io, Math.min(intervalMs, 1000)))) return stopWatching(io);
  }
}

async function followDb(io: CommandIO, batch: string, intervalMs: number): Promise<number> {
  return withDb(io, async (db) => {
    const rec = await getBatch(db.knex, batch);
    if (!rec) throw notFound(batch);
    const state = newState(batch, 'watch', Date.now());
    state.phase = 'send';
    const samples: [number, number][] = [];
    const lastPlain = { at: 0, text: '' };
    let announced = false;
    for (;;) {
      const sum = await summarize(db.knex, batch);
      const st: StatusTotalsLike = sum;
      state.statuses = st;
      state.updated_at = Date.now();
      const open = st.counts.not_sent + st.counts.sending + st.counts.pending;
      if (open === 0) {
        io.screen?.clearStatus();
        showStatus(io, (await getBatch(db.knex, batch))!, sum, await countByState(db.knex, batch));
        if (!io.json) io.out(`Every row of batch ${batch} is final.`);
        return 0;
      }
      if (!announced) {
        note(io, `Following batch ${batch} in ${db.where} every ${durationText(intervalMs / 1000)}; Ctrl-C stops watching (runs go on).`);
        announced = true;
      }
      const m = measure(state);
      samples.push([Date.now(), m.done]);
      while (samples.length > 2 && Date.now() - samples[0]![0] > 15_000) samples.shift();
      const [t0, v0] = samples[0]!;
      const dt = (Date.now() - t0) / 1000;
      if (dt >= 2) {
        state.rate = Math.max(0, (m.done - v0) / dt);
        state.eta_s = m.total !== null && state.rate > 0 ? (m.total - m.done) / state.rate : null;
      }
      render(io, state, lastPlain);
      if (!(await pause(io, intervalMs))) return stopWatching(io);
    }
  });
}

function stopWatching(io: CommandIO): number {
  io.screen?.clearStatus();
  note(io, 'Stopped watching (the run, if any, goes on).');
  return 0;
}
