import path from 'node:path';
import { EXIT, RefusedError } from '../errors.js';
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
    // Exit 3, as `payouts run` without a terminal and without --yes: refused before anything is sent.
    throw new RefusedError('`payouts watch` pays every file dropped in the inbox without asking: start it with --yes (the explicit yes an unattended run needs); nothing sent');
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
      else if (e.type === 'blocked') note(io, `Inbox: ${e.why}`);
      else if (e.type === 'error') note(io, `Inbox: ${e.why}`);
      else if (e.type === 'finished') {
        // The run printed its report's path inside processing/; this is where file and reports are now.
        const as = e.storedAs === e.file ? '' : ` as ${e.storedAs} (a file of that name was there already)`;
        note(io, `Inbox: ${e.file} -> ${e.movedTo}/${as} (exit ${e.exitCode}): ${e.message}; its reports${e.movedTo === 'failed' ? ' and why.txt' : ''}: ${e.reportsDir}`);
      }
    },
    runFile: async (f) => {
      const { csv, batch, reportDir, beforeSend } = f;
      let message = '';
      let awaitingApproval = false;
      const exitCode = await runCommand(unattended, {
        ...o,
        csv,
        batch,
        reportDir,
        beforeSend,
        reportsMovedAfter: true,
        onResult: (r) => {
          message = r.message;
          awaitingApproval = r.awaitingApproval === true;
        },
      });
      return { exitCode, message, awaitingApproval };
    },
  });
  if (io.json) {
    printJson(io, { inbox, processed: res.processed.map((p) => ({ file: p.file, batch: p.batch, exit_code: p.exitCode, moved_to: p.movedTo })), blocked: res.blocked });
  }
  // A round that could pay nothing (done/ or failed/ not writable) is a configuration error for cron to mail.
  return watchExitCode([...res.processed.map((p) => p.exitCode), ...(res.blocked.length ? [EXIT.usage] : [])]);
}

/**
 * The watcher's own exit: the highest of the files' exit codes (0 when it took none), so that cron mails
 * a round in which any payroll had rows not paid (1), was refused (2, 3) or is unfinished (4 and up).
 */
export function watchExitCode(codes: readonly number[]): number {
  return codes.reduce((a, b) => Math.max(a, b), 0);
}
