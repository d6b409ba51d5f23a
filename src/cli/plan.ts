import { formatRupeesIndian } from '../money.js';
import type { ChangePlan, PlanPayee } from '../engine/plan.js';

const WORD: Record<string, string> = { account: 'account', ifsc: 'IFSC', name: 'name', reference: 'reference' };

function who(p: PlanPayee): string {
  return `${p.name ?? '(no name)'}${p.reference ? ` (${p.reference})` : ''}`;
}

const money = (p: bigint | null) => (p === null ? '(no amount)' : formatRupeesIndian(p));

/**
 * The change plan in words, for the confirmation, the dry run and the output of a run: a known payee's
 * changed bank details first (masked), then amounts that changed, new payees and payees gone.
 */
export function planLines(plan: ChangePlan | undefined, max: number): string[] {
  if (!plan) return [];
  if (plan.skipped) return [`  changes since the previous batch: not compared (${plan.skipped})`];
  if (!plan.previous) return plan.newPayees.length ? [`  changes: no earlier batch paid any of these payees (all ${plan.newPayees.length} are new)`] : [];
  const lines: string[] = [];
  const since = `batch "${plan.previous.batch}"`;
  if (plan.bankDetailsChanged.length > 0) {
    lines.push(`  CHANGED BANK DETAILS: ${plan.bankDetailsChanged.length} payee${plan.bankDetailsChanged.length > 1 ? 's' : ''} ${since} paid now ${plan.bankDetailsChanged.length > 1 ? 'have' : 'has'} another account, IFSC or name: check each with the payee before saying yes:`);
    for (const c of plan.bankDetailsChanged.slice(0, max)) {
      const what = c.changes.map((d) => `${WORD[d.field]} ${d.old ?? '(blank)'} -> ${d.new ?? '(blank)'}`).join(', ');
      lines.push(`    row ${c.now.row}: ${who(c.now)}, ${money(c.now.amountPaise)}: ${what} (was row ${c.before.row}; the same payee by ${c.linkedBy.join(', ')})`);
    }
    if (plan.bankDetailsChanged.length > max) lines.push(`    … and ${plan.bankDetailsChanged.length - max} more (\`--json\` lists every one)`);
  }
  const parts = [
    `${plan.unchanged} as before`,
    `${plan.amountChanged.length} amounts changed by more than ${plan.thresholdPct} %`,
    `${plan.newPayees.length} new`,
    `${plan.gone.length} gone`,
  ];
  lines.push(`  changes since ${since}: ${parts.join(', ')}`);
  for (const a of plan.amountChanged.slice(0, max)) {
    lines.push(`    row ${a.now.row}: ${who(a.now)}: ${money(a.before.amountPaise)} -> ${money(a.now.amountPaise)} (${a.deltaPct > 0 ? '+' : ''}${a.deltaPct.toFixed(1)} %)`);
  }
  for (const n of plan.newPayees.slice(0, max)) lines.push(`    new: row ${n.row}: ${who(n)}, account ${n.account}, ${money(n.amountPaise)}`);
  for (const g of plan.gone.slice(0, max)) lines.push(`    gone: ${who(g)}, account ${g.account} (row ${g.row} of ${since})`);
  return lines;
}
