/**
 * The command line's parts on their own (issue 9): the JSON style, the readable log formatter with its
 * repeat counts, the status block on stderr, the confirmation text, the progress lines, the status table,
 * the failure mapping and the configuration's new defaults.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { jsonStyle, snake } from '../src/cli/jsonStyle.js';
import { PrettyLog } from '../src/cli/prettyLog.js';
import { Screen, cut } from '../src/cli/screen.js';
import { apiTarget, confirmLines, isYes } from '../src/cli/confirm.js';
import { applyEvent, measure, newState, plainLine, terminalLines } from '../src/cli/progress.js';
import { statusLines, summaryJson, unfinishedLines, type StatusTotalsLike } from '../src/cli/summary.js';
import { failureOf } from '../src/cli/failure.js';
import { defaultDataDir, loadConfig, parseDurationWithUnit, parseRupeeInput } from '../src/config.js';
import { ApiUnavailableError, BusyError, ConfigError, EXIT, RefusedError } from '../src/errors.js';
import { NetworkError } from '../src/alliance/errors.js';
import { REDACT_PATHS } from '../src/log.js';
import { REPORT_STATUSES, type ReportStatus } from '../src/states.js';
import type { Preflight } from '../src/engine/events.js';
import type { IngestResult } from '../src/engine/ingest.js';

function statuses(c: Partial<Record<ReportStatus, [number, string]>>): StatusTotalsLike {
  const counts = Object.fromEntries(REPORT_STATUSES.map((s) => [s, c[s]?.[0] ?? 0])) as Record<ReportStatus, number>;
  const totals = Object.fromEntries(REPORT_STATUSES.map((s) => [s, { count: c[s]?.[0] ?? 0, amount: c[s]?.[1] ?? '0.00' }])) as StatusTotalsLike['totals'];
  return { counts, totals, charges: '11.80', debited: '3711.80' };
}

describe('one JSON style', () => {
  it('snake_case keys, rupee strings, paise only in *_paise, accounts masked, bigints as strings', () => {
    const out = jsonStyle({
      toSend: 2,
      amountPaise: 123450n,
      balancePaise: null,
      byMethod: [{ method: 'IMPS', count: 1, paise: 5n }],
      revisionSummary: { keptNotInFile: 1, conflicts: [{ oldAccount: '123456789012', newAccountNo: '998877665544', oldAmountPaise: 100n }] },
      when: new Date('2026-11-27T00:00:00Z'),
      already_snake: 'x',
      count: 7n,
    });
    expect(out).toEqual({
      to_send: 2,
      amount: '1234.50',
      amount_paise: '123450',
      balance: null,
      balance_paise: null,
      by_method: [{ method: 'IMPS', count: 1, amount: '0.05', amount_paise: '5' }],
      revision_summary: { kept_not_in_file: 1, conflicts: [{ old_account: 'XXXXXXXX9012', new_account_no: 'XXXXXXXX5544', old_amount: '1.00', old_amount_paise: '100' }] },
      when: '2026-11-27T00:00:00.000Z',
      already_snake: 'x',
      count: '7',
    });
    expect(snake('headerNotes')).toBe('header_notes');
    expect(snake('by_method')).toBe('by_method');
  });
});

describe('readable logs', () => {
  function collect(now: () => number) {
    const lines: string[] = [];
    const log = new PrettyLog((t) => lines.push(...t.split('\n').filter(Boolean)), { repeatEveryMs: 10_000, now });
    const logger = pino({ level: 'info', base: undefined, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, log);
    return { lines, log, logger };
  }

  it('an outage: 292 warnings of three kinds become a few readable lines, each kind once with a count', () => {
    let t = 1_000_000;
    const { lines, log, logger } = collect(() => t);
    for (let i = 0; i < 292; i++) {
      t += 200; // about a minute of outage
      const kind = i % 3;
      if (kind === 0) logger.warn({ orderId: `PO${i}`, err: 'connect ECONNREFUSED 127.0.0.1:9' }, 'poll failed; will retry');
      else if (kind === 1) logger.warn({ orderId: `PO${i}`, err: 'socket hang up' }, 'outcome unknown: asking status before anything else');
      else logger.warn({ orderId: `PO${i}`, why: 'status unavailable' }, 'payout left unresolved (submitting); a later run or reconcile asks its status');
    }
    log.flush();
    // 3 first lines, and a summary per kind every 10 s of the ~58 s: far fewer than 292.
    expect(lines.length).toBeLessThanOrEqual(3 + 3 * 7);
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const l of lines) expect(l).not.toMatch(/^\{/);
    expect(lines[0]).toBe('warning: poll failed; will retry — orderId=PO0 err="connect ECONNREFUSED 127.0.0.1:9"');
    // Every occurrence is accounted for: the first line plus the counted repeats.
    for (const msg of ['poll failed; will retry', 'outcome unknown: asking status before anything else']) {
      const repeats = lines.filter((l) => l.startsWith(`warning: ${msg} — `) && /more times?/.test(l)).map((l) => Number(/— (\d+) more/.exec(l)![1]));
      expect(1 + repeats.reduce((a, b) => a + b, 0)).toBe(msg.startsWith('poll') ? 98 : 97);
      const last = lines.filter((l) => l.startsWith(`warning: ${msg}`)).pop()!;
      expect(last).toMatch(/\((9[78]) in all\)/);
    }
  });

  it('"Resolving …"-style repeats of one message print once, with the count at the end', () => {
    const t = 5_000;
    const { lines, log, logger } = collect(() => t);
    for (let i = 0; i < 20; i++) logger.warn({ rows: 8 }, 'lost the claim on a row: another runner resolves it');
    expect(lines).toHaveLength(1);
    log.flush();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/19 more times in the last 1 s \(20 in all\)/);
  });

  it('secrets stay redacted in the readable form; errors and levels are worded', () => {
    const { lines, logger } = collect(() => 0);
    logger.error({ accessKey: 'AK-123', secretKey: 'SK-456', headers: { signature: 'abc' }, beneficiary_acc_no: '123456789012' }, 'boom');
    expect(lines[0]).toMatch(/^error: boom — /);
    expect(lines[0]).not.toMatch(/AK-123|SK-456|abc|123456789012/);
    expect(lines[0]).toContain('[redacted]');
  });
});

describe('the status block on stderr', () => {
  it('a log line goes above the block, which is drawn again; without a terminal no block at all', () => {
    let out = '';
    const s = new Screen({ write: (t) => (out += t), tty: true, columns: () => 80 });
    s.status(['one', 'two']);
    expect(out).toBe('one\ntwo\n');
    out = '';
    s.line('a warning');
    expect(out).toBe('\x1b[2A\r\x1b[Ja warning\none\ntwo\n');
    out = '';
    s.clearStatus();
    expect(out).toBe('\x1b[2A\r\x1b[J');
    let plain = '';
    const p = new Screen({ write: (t) => (plain += t), tty: false });
    p.status(['drawn?']);
    p.line('a line');
    expect(plain).toBe('a line\n');
  });

  it('--log-format json: every stderr line is a JSON object', () => {
    let out = '';
    const s = new Screen({ write: (t) => (out += t), tty: false, json: true, now: () => 42 });
    s.line('payouts: refused', 'error', { exit_code: 3 });
    expect(JSON.parse(out)).toEqual({ level: 50, time: 42, msg: 'payouts: refused', exit_code: 3 });
  });

  it('cut keeps colour codes and cuts visible characters', () => {
    expect(cut('abcdef', 3)).toBe('abc');
    expect(cut('\x1b[33mabcdef\x1b[0m', 2)).toBe('\x1b[33mab\x1b[0m');
  });
});

describe('the confirmation', () => {
  const pf: Preflight = {
    toSend: 3,
    amountPaise: 3_500_50n,
    feesPaise: 17_70n,
    needPaise: 3_518_20n,
    balancePaise: 10_000_00n,
    shortfallPaise: 0n,
    byMethod: [
      { method: 'IMPS', count: 2, amountPaise: 1_500_50n },
      { method: 'NEFT', count: 1, amountPaise: 2_000_00n },
    ],
  };

  it('live or sandbox from the base URL host', () => {
    expect(apiTarget('https://api.alliancepay.in/v1').live).toBe(true);
    expect(apiTarget('https://api.alliancepay.in/v1').label).toMatch(/LIVE API api\.alliancepay\.in — real money/);
    expect(apiTarget('http://127.0.0.1:4010').live).toBe(false);
    expect(apiTarget('http://localhost:4010').label).toMatch(/SANDBOX localhost:4010/);
    expect(apiTarget('https://sandbox.alliancepay.in').live).toBe(false);
    expect(apiTarget('https://uat-api.alliancepay.in').live).toBe(false);
    expect(apiTarget('https://testament.example.com').live).toBe(true);
  });

  it('shows rows and rupees per method, fees, balance before and after, rows not sent and why, revision changes', () => {
    const ingest = {
      batch: 'nov',
      revision: 2,
      kind: 'revised',
      rows: 6,
      invalid: 2,
      warnings: 0,
      validTotalPaise: 0n,
      fileTotalPaise: 4_250_50n,
      headerNotes: ['column "notes" is ignored'],
      problems: [
        { row: 4, errors: ['beneficiary_name looks like a formula'], warnings: [] },
        { row: 5, errors: ['ifsc "SBIN060589" is not 11 characters'], warnings: [] },
      ],
      revisionSummary: {
        kept: 1,
        dropped: 8,
        removedCount: 7,
        removed: Array.from({ length: 7 }, (_, k) => ({ row: 10 + k, name: `Gone ${k}`, account: 'XXXXXX5678', amountPaise: 100_00n })),
        toPay: 2,
        keptNotInFile: 0,
        toInsert: 3,
        accepted: 0,
        conflicts: [],
      },
      ready: { count: 3, paise: 0n, byMethod: [] },
      repeats: [{ row: 2, other_batch: 'oct', other_row: 7, other_state: 'approved', amount_paise: '150050', created_at: new Date('2026-10-28T06:00:00Z') }],
      repeatCount: 1,
      repeatWindowDays: 45,
      dryRun: false,
    } satisfies IngestResult;
    const text = confirmLines({ batch: { name: 'nov', revision: 2 }, preflight: pf, baseUrl: 'https://api.alliancepay.in', ingest, statuses: statuses({ approved: [1, '100.00'] }) }).join('\n');
    expect(text).toMatch(/batch "nov" \(revision 2\) through the LIVE API api\.alliancepay\.in — real money/);
    // The whole file's control totals, to compare with the payroll sheet (every row, valid or not).
    expect(text).toMatch(/the file: 6 data rows, amounts adding up to ₹4,250\.50 \(compare with the payroll sheet; --expect-rows and --expect-total check it\)/);
    const checked = confirmLines({ batch: { name: 'nov', revision: 2 }, preflight: pf, baseUrl: 'https://x.test', ingest, control: { rows: 6, totalPaise: 4_250_50n } }).join('\n');
    expect(checked).toMatch(/the file: 6 data rows, amounts adding up to ₹4,250\.50 \(matches --expect-rows 6 and --expect-total ₹4,250\.50\)/);
    expect(text).toMatch(/IMPS\s+2 payouts\s+₹1,500\.50/);
    expect(text).toMatch(/NEFT\s+1 payouts\s+₹2,000\.00/);
    expect(text).toMatch(/total\s+3 payouts\s+₹3,500\.50/);
    expect(text).toMatch(/fees .*₹17\.70; needed ₹3,518\.20/);
    expect(text).toMatch(/wallet balance ₹10,000\.00 now, about ₹6,481\.80 after/);
    // A row paying an account what another recent batch paid it is pointed out before the yes.
    expect(text).toMatch(/WARNING: 1 rows pay an account the same amount another batch paid \(or is paying\) in the last 45 days/);
    expect(text).toMatch(/row 2: ₹1,500\.50, like row 7 of batch "oct" \(approved, 2026-10-28\)/);
    expect(text).toMatch(/not sent now: 2 invalid; 1 sent by an earlier run/);
    expect(text).toMatch(/row 4: beneficiary_name looks like a formula/);
    expect(text).toMatch(/note: column "notes" is ignored/);
    expect(text).toMatch(/corrected copy: 1 rows already sent and kept \(not paid again\); 3 new, corrected or not yet sent lines, 2 of them to pay \(1 invalid\)/);
    // Payees the corrected copy no longer has are named, not just counted: they will not be paid.
    expect(text).toMatch(/REMOVED: 7 payees of the earlier copy are not in this file; never sent, they are not paid by this batch:/);
    expect(text).toMatch(/row 10: Gone 0, account XXXXXX5678, ₹100\.00/);
    expect(text).toMatch(/… and 2 more/);
  });

  it('only y or yes sends', () => {
    for (const a of ['y', 'Y', 'yes', ' YES ']) expect(isYes(a)).toBe(true);
    for (const a of ['', 'n', 'no', 'yy', 'sure', 'ye']) expect(isYes(a)).toBe(false);
  });
});

describe('progress lines', () => {
  it('phases from events; sending and awaiting the bank measured from the stored counts', () => {
    const s = newState('nov', 'run', 0);
    expect(applyEvent(s, { type: 'phase', phase: 'ingest' }, 1)).toBe(true);
    applyEvent(s, { type: 'ingest_progress', rows: 500 }, 2);
    expect(measure(s)).toMatchObject({ done: 500, unit: 'rows read', label: 'Reading the file' });
    applyEvent(s, { type: 'ingest_progress', rows: 100 }, 3);
    expect(measure(s).label).toMatch(/pass 2/);
    applyEvent(s, { type: 'phase', phase: 'send' }, 4);
    s.statuses = statuses({ not_sent: [6, '600.00'], sending: [2, '200.00'], pending: [2, '200.00'], invalid: [1, '5.00'] });
    expect(measure(s)).toMatchObject({ done: 4, total: 10, unit: 'sent', label: 'Sending' });
    s.statuses = statuses({ pending: [4, '400.00'], approved: [5, '500.00'], rejected: [1, '100.00'] });
    expect(measure(s)).toMatchObject({ done: 6, total: 10, unit: 'final', label: 'Awaiting the bank' });
    s.rate = 2.5;
    s.eta_s = 75;
    const line = plainLine(s, 61_000);
    expect(line).toBe(
      'progress nov: awaiting the bank, 6/10 final; not sent 0 (₹0.00), sending 0, sent, awaiting the bank 4 (₹400.00), paid 5 (₹500.00), rejected 1, refused by the API 0; 2.5/s, ETA 1m15s [1m01s]',
    );
    const block = terminalLines(s, 0, 120);
    expect(block[0]).toMatch(/Awaiting the bank\s+\[█+░+\]\s+60%\s+6\/10 final\s+2\.5\/s, ETA 1m15s/);
    expect(block[1]).toBe('  moved so far ₹900.00 (paid ₹500.00, at the bank ₹400.00, in flight ₹0.00)');
    expect(block[2]).toMatch(/^  not sent 0 .* sent, awaiting the bank 4 \(₹400\.00\)$/);
    expect(block[3]).toMatch(/^  paid 5 \(₹500\.00\) · rejected 1 · refused by the API 0$/);
  });

  it('at 80 columns words go before numbers: every line fits, no amount is cut', () => {
    const s = newState('payroll-nov', 'run', 0);
    applyEvent(s, { type: 'phase', phase: 'send' }, 1);
    s.statuses = statuses({ not_sent: [120, '4010000.00'], sending: [8, '80000.00'], pending: [28, '980000.00'], approved: [148, '5430208.00'], rejected: [3, '3000.00'] });
    applyEvent(s, { type: 'wire', claimed: 8, onWire: 0 }, 2);
    applyEvent(s, { type: 'api_trouble', message: 'the API is answering 429 (too many requests): sending waits and slows down; nothing is lost or sent twice' }, 3);
    s.rate = 0;
    for (const width of [80, 60]) {
      const block = terminalLines(s, 0, width);
      for (const l of block) expect(l.length, `${width}: ${l}`).toBeLessThan(width);
      const text = block.join('\n');
      expect(text).toMatch(/moved (so far )?₹64,90,208\.00/);
      expect(text).toMatch(/not sent 120( \(₹40,10,000\.00\))?/);
      expect(text).toMatch(/8 waiting/);
      expect(text).toMatch(/429/);
    }
    // And with room, the words: the 8 claimed rows are waiting for their turn, not "outcome not known".
    const wide = terminalLines(s, 0, 200).join('\n');
    expect(wide).toMatch(/sending 8: 0 on the wire, 8 waiting for their turn \(not sent yet\)/);
    expect(wide).toMatch(/API trouble: the API is answering 429/);
  });
});

describe('the status table', () => {
  it('every status with rows, rupees and words; debited; what was sent and what was not after an interruption', () => {
    const s = statuses({ not_sent: [20, '2000.00'], sending: [1, '100.00'], pending: [7, '700.00'], approved: [30, '3000.00'] });
    const text = statusLines(s).join('\n');
    expect(text).toMatch(/not_sent\s+20\s+₹2,000\.00\s+not sent/);
    expect(text).toMatch(/sending\s+1\s+₹100\.00\s+sent, outcome not known yet/);
    expect(text).toMatch(/pending\s+7\s+₹700\.00\s+sent, awaiting the bank/);
    expect(text).toMatch(/approved\s+30\s+₹3,000\.00\s+paid/);
    expect(text).toMatch(/cancelled\s+0\s+₹0\.00/);
    // The parts add up to the debit (pending payouts are debited when taken), and what may be debited besides is apart.
    expect(text).toContain('debited by the API: ₹3,711.80 (paid ₹3,000.00 + awaiting the bank ₹700.00 + charges ₹11.80)');
    expect(text).toContain('possibly debited too: 1 payout, ₹100.00, outcome not known yet (never pay these by hand)');
    expect(text).not.toMatch(/already out of the wallet/);
    const un = unfinishedLines(s, 'nov').join('\n');
    expect(un).toMatch(/Sent: 38 rows, ₹3,800\.00 \(do not pay these again by hand\)\. Not sent: 20 rows, ₹2,000\.00/);
    expect(un).toMatch(/payouts resume nov/);
    expect(unfinishedLines(statuses({ approved: [3, '1.00'] }), 'x')).toEqual([]);
    const j = summaryJson(s);
    expect(j.groups['not_sent']).toEqual({ rows: 20, amount: '2000.00', amount_paise: '200000' });
    expect(j.groups['sent_awaiting_bank']).toEqual({ rows: 7, amount: '700.00', amount_paise: '70000' });
    expect(j.groups['sent_outcome_unknown']!.rows).toBe(1);
  });
});

describe('failures and their exit codes', () => {
  it('program errors keep their code; API failures 6; anything else 4 without a stack unless --verbose', () => {
    expect(failureOf(new ConfigError('bad'), false)).toEqual({ code: EXIT.usage, message: 'bad' });
    expect(failureOf(new RefusedError('no'), false).code).toBe(3);
    expect(failureOf(new BusyError('held'), false).code).toBe(5);
    expect(failureOf(new ApiUnavailableError('down'), false).code).toBe(6);
    expect(failureOf(new NetworkError('ECONNREFUSED', { method: 'GET', path: 'x' } as never), false).code).toBe(6);
    const odd = failureOf(new TypeError("Cannot read properties of undefined (reading 'x')"), false);
    expect(odd.code).toBe(EXIT.unfinished);
    expect(odd.message).toMatch(/^unexpected error: Cannot read properties/);
    expect(odd.message).not.toMatch(/\n\s+at /);
    expect(failureOf(new TypeError('x'), true).message).toMatch(/\n\s+at /);
  });
});

describe('configuration', () => {
  it('the data directory defaults to a per-user place, the same from any working directory; flags and env override', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x/data', HOME: '/home/a' })).toBe('/x/data/alliance-payouts');
    expect(defaultDataDir({ HOME: '/home/a' })).toBe('/home/a/.local/share/alliance-payouts');
    expect(defaultDataDir({ XDG_DATA_HOME: 'relative', HOME: '/home/a' })).toBe('/home/a/.local/share/alliance-payouts');
    expect(loadConfig({}, { HOME: '/home/a' }).db).toMatchObject({ dataDir: '/home/a/.local/share/alliance-payouts', dataDirFrom: 'default' });
    expect(loadConfig({}, { HOME: '/home/a', PAYOUTS_DATA_DIR: '/srv/p' }).db).toMatchObject({ dataDir: '/srv/p', dataDirFrom: 'env' });
    expect(loadConfig({ dataDir: 'd' }, { PAYOUTS_DATA_DIR: '/srv/p' }).db).toMatchObject({ dataDir: 'd', dataDirFrom: 'flag' });
  });

  it('--timeout takes a unit; a bare number (once milliseconds) is refused rather than guessed', () => {
    expect(loadConfig({ timeout: '30s' }, {}).api.timeoutMs).toBe(30_000);
    expect(loadConfig({ timeout: '500ms' }, {}).api.timeoutMs).toBe(500);
    expect(loadConfig({}, { ALLIANCE_TIMEOUT_MS: '2500' }).api.timeoutMs).toBe(2500);
    expect(() => loadConfig({ timeout: '500' }, {})).toThrow(/--timeout needs a unit: 500s or 500ms/);
    expect(() => parseDurationWithUnit('0s', '--timeout')).toThrow(/longer than 0/);
  });

  it('rupee amounts as people type them', () => {
    expect(parseRupeeInput('1,23,456.00')).toBe(12_345_600n);
    expect(parseRupeeInput('123,456.5')).toBe(12_345_650n);
    expect(parseRupeeInput('₹ 1,00,000')).toBe(10_000_000n);
    expect(parseRupeeInput('123456')).toBe(12_345_600n);
    for (const bad of ['1,2,3', '-5', '1.234', 'abc', '1,23,456.00.0', '']) expect(parseRupeeInput(bad)).toBeUndefined();
  });

  it('log format: auto unless told; NO_COLOR turns colours off', () => {
    expect(loadConfig({}, {}).logFormat).toBe('auto');
    expect(loadConfig({ logFormat: 'json' }, {}).logFormat).toBe('json');
    expect(() => loadConfig({ logFormat: 'xml' }, {})).toThrow(/--log-format/);
    expect(loadConfig({}, { NO_COLOR: '1' }).color).toBe(false);
  });
});

describe('results on stdout while the block is drawn on the same terminal', () => {
  it('the block is lifted before the line and drawn again after it, so no result line is erased', () => {
    let out = '';
    const s = new Screen({ write: (t) => (out += t), tty: true, columns: () => 80 });
    s.status(['⠋ Reading the file  50 rows read']);
    out = '';
    s.around(() => (out += 'Batch nov: 50 rows read\n'));
    expect(out).toBe('\x1b[1A\r\x1b[JBatch nov: 50 rows read\n⠋ Reading the file  50 rows read\n');
    out = '';
    s.status(['⠙ Checking the balance']);
    // Only the block's own line is erased: one line up, not into the result.
    expect(out).toBe('\x1b[1A\r\x1b[J⠙ Checking the balance\n');
  });
});

describe('the expected duration before the yes (issue 20 point 7)', () => {
  it('two requests per payout at --rate: 3,000 payouts at 5/s take about 20 minutes', async () => {
    const { expectedDuration, confirmLines } = await import('../src/cli/confirm.js');
    expect(expectedDuration(3000, 5)).toBe('about 20 min');
    expect(expectedDuration(40, 5)).toBe('about 16 s');
    expect(expectedDuration(100_000, 5)).toBe('about 11 h 7 min');
    const lines = confirmLines({
      batch: { name: 'nov', revision: 1 },
      preflight: { toSend: 3000, amountPaise: 100n, feesPaise: 0n, needPaise: 100n, balancePaise: 1000n, shortfallPaise: 0n, byMethod: [{ method: 'IMPS', count: 3000, amountPaise: 100n }] },
      baseUrl: 'https://api.example.com',
      rate: 5,
    });
    expect(lines.join('\n')).toContain('sending takes about 20 min at --rate 5 (an initiate and a status check per payout share it), then the bank settles');
  });
});
