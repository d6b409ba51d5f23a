import { EXIT, type ExitCode } from '../errors.js';
import type { ReportStatus } from '../states.js';

/** What a run knows at its end, for the exit decision. */
export interface RunEnd {
  batch: string;
  counts: Record<ReportStatus, number>;
  /** Why sending stopped early, if it did. */
  stopped?: { kind: 'auth' | 'unavailable' | 'signal'; message: string } | undefined;
  /** Rows `submitting` under another live runner's lease. */
  heldByOthers: number;
  /** The report could not be written (disk full, …). */
  reportError?: string | undefined;
  cancelled: boolean;
  /** Rows this run sent to needs_review because another payout holds their order_id. */
  collisions: number;
}

/**
 * The exit code and the one line a person acts on, from what the run knows at its end. Pure: tested on
 * its own. Unfinished work (anything not sent, sent without an outcome yet, or awaiting the bank) always
 * means 4, never "rows not paid", so nobody pays those people again by hand.
 */
export function decideExit(e: RunEnd): { exitCode: ExitCode; message: string } {
  const c = e.counts;
  const unfinished = c.not_sent + c.sending + c.pending;
  const unpaid = c.invalid + c.rejected + c.failed + c.needs_review + c.cancelled;
  const resume = `\`payouts resume ${e.batch}\``;
  if (e.stopped?.kind === 'auth') {
    return {
      exitCode: EXIT.apiUnavailable,
      message: `the API stopped accepting our credentials (${e.stopped.message}); ${unfinished} rows not final yet: fix the credentials, then ${resume}`,
    };
  }
  if (unfinished > 0) {
    const why =
      e.stopped?.kind === 'signal'
        ? 'stopped on request'
        : e.stopped?.kind === 'unavailable'
          ? `the API stayed unavailable (${e.stopped.message})`
          : c.sending > 0 && e.heldByOthers > 0
            ? `${e.heldByOthers} payouts are being worked on by another runner`
            : c.sending > 0
              ? `${c.sending} payouts have an outcome not yet known (their status could not be asked now)`
              : c.pending > 0
                ? `${c.pending} payouts still await the bank at the poll timeout`
                : `${c.not_sent} rows not sent yet`;
    return { exitCode: EXIT.unfinished, message: `${why}: ${unfinished} rows not final yet; ${resume} carries on` };
  }
  if (e.reportError) {
    return { exitCode: EXIT.unfinished, message: `every row is final, but the report could not be written (${e.reportError}): \`payouts report ${e.batch}\` writes it again` };
  }
  if (unpaid > 0) {
    const parts = (
      [
        ['invalid', c.invalid],
        ['rejected', c.rejected],
        ['failed', c.failed],
        ['need review', c.needs_review],
        ['cancelled', c.cancelled],
      ] as const
    )
      .filter(([, n]) => n > 0)
      .map(([w, n]) => `${n} ${w}`);
    const loud =
      e.collisions > 0
        ? `. ${e.collisions} order_id${e.collisions > 1 ? 's' : ''} collided with payouts this batch never made: those rows were NOT paid (see the report's reason column)`
        : '';
    // What to do next, in the same line: cron mails it, a person reads it last.
    const next: string[] = [];
    if (c.invalid + c.rejected + c.failed > 0) next.push(`\`payouts report ${e.batch} --fixable\` writes the rows to correct, then run them with --revise`);
    if (c.needs_review > 0) next.push(`check the rows needing review (the report says why), then \`payouts resume ${e.batch} --retry-review\``);
    return { exitCode: EXIT.unpaidRows, message: `finished: ${c.approved} paid, ${unpaid} not paid (${parts.join(', ')})${loud}${next.length ? `. Next: ${next.join('; ')}` : ''}` };
  }
  return { exitCode: EXIT.ok, message: `finished: all ${c.approved} rows paid` };
}
