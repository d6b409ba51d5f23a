/**
 * Row states, mirrored by the CHECK constraint in migrations/20261126000001_init.ts.
 * Transitions happen only through `UPDATE … WHERE id = ? AND state IN (…)`: zero rows means another
 * runner (or a later fact) won, and the caller must not act as if it had.
 */
export const ROW_STATES = {
  /** Failed validation; never sent. */
  invalid: 'invalid',
  /** Valid, order_id fixed, not yet sent. */
  ready: 'ready',
  /** Intent committed: a request may have been sent; outcome unknown until resolved by status. */
  submitting: 'submitting',
  /** The API accepted it; waiting for Approved or Rejected. */
  pending: 'pending',
  approved: 'approved',
  rejected: 'rejected',
  /** The API refused it (400/422): not created. */
  failed: 'failed',
  /** Not sent by decision (e.g. short balance); a later run reconsiders it. */
  skipped: 'skipped',
  /** Unresolved past the configured age: an operator must look. */
  needs_review: 'needs_review',
} as const;

export type RowState = (typeof ROW_STATES)[keyof typeof ROW_STATES];
/** States in which a payout may exist at the API. */
export const SENT_STATES: readonly RowState[] = ['submitting', 'pending', 'approved', 'rejected', 'needs_review'];

/** Statuses shown in reports. `submitting` and `ready` surface as pending work. */
export type ReportStatus = 'approved' | 'rejected' | 'invalid' | 'failed' | 'pending' | 'skipped' | 'needs_review';
export const REPORT_STATUSES: readonly ReportStatus[] = [
  'approved',
  'rejected',
  'failed',
  'invalid',
  'pending',
  'skipped',
  'needs_review',
];

export function reportStatus(state: RowState): ReportStatus {
  switch (state) {
    case 'ready':
    case 'submitting':
    case 'pending':
      return 'pending';
    default:
      return state;
  }
}
