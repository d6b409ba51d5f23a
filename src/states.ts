/**
 * Row states and report statuses: the lowest layer, imported by db, engine and report alike.
 * Row states are mirrored by the CHECK constraint in the migrations (latest:
 * migrations/20261127000002_identity_liveness.ts). Transitions happen only through
 * `UPDATE … WHERE id = ? AND state IN (…)`: zero rows means another runner (or a later fact) won, and
 * the caller must not act as if it had.
 */
export const ROW_STATES = {
  /** Failed validation; never sent. */
  invalid: 'invalid',
  /** Valid, order_id fixed, not being sent now. Ever claimed before? See `first_claimed_at`. */
  ready: 'ready',
  /** Claimed: a request may have been sent; outcome unknown until resolved by status. */
  submitting: 'submitting',
  /** The API accepted it; waiting for Approved or Rejected. */
  pending: 'pending',
  approved: 'approved',
  rejected: 'rejected',
  /** The API refused it (400/422): not created. */
  failed: 'failed',
  /** Not sent by decision (e.g. short balance); a later run reconsiders it. */
  skipped: 'skipped',
  /** Its fate cannot be known by the program (or a payout under its order_id is not ours): an operator must look. */
  needs_review: 'needs_review',
  /** An operator cancelled the batch before this row was ever sent: it never will be. */
  cancelled: 'cancelled',
} as const;

export type RowState = (typeof ROW_STATES)[keyof typeof ROW_STATES];
export const ALL_ROW_STATES: readonly RowState[] = Object.values(ROW_STATES);

/** States in which a payout may exist at the API (with first_claimed_at, what "may have been sent" means). */
export const SENT_STATES: readonly RowState[] = ['submitting', 'pending', 'approved', 'rejected', 'needs_review'];
/** Final states: nothing more happens to the row without an operator. */
export const FINAL_STATES: readonly RowState[] = ['approved', 'rejected', 'failed', 'invalid', 'cancelled'];

/**
 * Statuses shown to people (reports, status, summaries). They keep apart what an operator must never
 * confuse: rows not sent, rows whose request may be at the API with no answer yet, and rows the API
 * accepted that await the bank.
 */
export const REPORT_STATUSES = [
  'approved',
  'rejected',
  'failed',
  'invalid',
  /** Accepted by the API, awaiting the bank: money has left the wallet. */
  'pending',
  /** A request may have reached the API; its outcome is not known yet. Never pay these by hand. */
  'sending',
  /** Not sent (yet): ready, or skipped by a refusal. */
  'not_sent',
  'needs_review',
  'cancelled',
] as const;
export type ReportStatus = (typeof REPORT_STATUSES)[number];

export function reportStatus(state: RowState): ReportStatus {
  switch (state) {
    case 'ready':
    case 'skipped':
      return 'not_sent';
    case 'submitting':
      return 'sending';
    default:
      return state;
  }
}

/** Words for a status, for people. */
export const STATUS_LABELS: Record<ReportStatus, string> = {
  approved: 'paid',
  rejected: 'rejected by the bank',
  failed: 'refused by the API',
  invalid: 'invalid',
  pending: 'sent, awaiting the bank',
  sending: 'sent, outcome not known yet',
  not_sent: 'not sent',
  needs_review: 'needs review',
  cancelled: 'cancelled',
};
