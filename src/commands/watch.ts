import path from 'node:path';
import { UsageError } from '../errors.js';
import { watchInbox } from '../engine/watch.js';
import { note, printJson, type CommandIO } from './context.js';
import { runCommand, type RunCommandOptions } from './run.js';

export interface WatchCommandOptions extends Omit<RunCommandOptions, 'csv' | 'batch' | 'dryRun' | 'revise'> {
  inbox: string;
  once: boolean;
  stableMs: number;
  pollMs: number;
  retryMs: number;
}

/**
 * `payouts watch <inbox>`: scheduled payroll (src/engine/watch.ts). Each file is one `payouts run` of its
 * own (batch named after the file, reports beside it in done/ or failed/, a notification per batch with
 * --notify-url). Nobody is there to answer a question, so the explicit yes is given when the watcher is
 * started (--yes); a batch declined at a prompt or refused stays where it is for a person.
 */
export async function watchCommand(io: CommandIO, o: WatchCommandOptions): Promise<number> {
  if (!o.yes) {
    throw new UsageError('`payouts watch` pays every file dropped in the inbox without asking: start it with --yes (the explicit yes an unattended run needs)');
  }
  const inbox = path.resolve(io.cwd, o.inbox);
  const unattended: CommandIO = { ...io, ask: undefined };
  const res = await watchInbox({
    inbox,
    once: o.once,
    stableMs: o.stableMs,
    pollMs: o.pollMs,
    retryMs: o.retryMs,
    stopSignal: io.stopSignal,
    onEvent: (e) => {
      if (io.json) return;
      if (e.type === 'taken') note(io, `Inbox: paying ${e.file} as batch ${e.batch}`);
      else if (e.type === 'finished') note(io, `Inbox: ${e.file} -> ${e.movedTo}/ (exit ${e.exitCode}): ${e.message}`);
    },
    runFile: async (f) => {
      const { csv, batch, reportDir } = f;
      let message = '';
      const capture: CommandIO = { ...unattended, out: (line) => ((message = line), unattended.out(line)) };
      const exitCode = await runCommand(capture, { ...o, csv, batch, reportDir });
      return { exitCode, message };
    },
  });
  if (io.json) printJson(io, { inbox, processed: res.processed.map((p) => ({ file: p.file, batch: p.batch, exit_code: p.exitCode, moved_to: p.movedTo })) });
  // The watcher's own exit: 0 when every file it took is done; 1 when one failed; 4 when one is left unfinished.
  if (res.processed.some((p) => p.movedTo === 'processing')) return 4;
  return res.processed.some((p) => p.movedTo === 'failed') ? 1 : 0;
}
