import type { Paise } from '../money.js';
import type { RowState } from '../states.js';
import type { IngestResult } from './ingest.js';

/** A batch's phases, in order. */
export type RunPhase = 'ingest' | 'preflight' | 'confirm' | 'send' | 'poll' | 'report';

export interface Preflight {
  toSend: number;
  amountPaise: Paise;
  feesPaise: Paise;
  needPaise: Paise;
  balancePaise: Paise | null;
  shortfallPaise: Paise;
  /** Rows to send and rupees, per payment method. */
  byMethod: { method: string; count: number; amountPaise: Paise }[];
}

/**
 * What the engine tells whoever watches a run (a terminal's progress display, a log line every few
 * seconds, a web page). The engine never prints; these are facts, not text.
 */
export type RunEvent =
  | { type: 'phase'; phase: RunPhase }
  | { type: 'ingest_progress'; rows: number }
  | { type: 'ingested'; ingest: IngestResult }
  | { type: 'preflight'; preflight: Preflight }
  /** A row reached a new state (committed). */
  | { type: 'row'; state: RowState; amountPaise: Paise; collision?: boolean }
  | { type: 'recovering'; rows: number }
  /** reconcile: rows compared with the API so far. */
  | { type: 'checked'; checked: number }
  /** The API is refusing or unreachable: sending pauses or stops. */
  | { type: 'api_trouble'; message: string }
  /** The API answered again after trouble. */
  | { type: 'api_ok' }
  /**
   * This runner's rows being sent: `claimed` (each committed as sending before any request) and of them
   * `onWire`, whose request is written and unanswered. The rest wait for their turn: not sent yet.
   */
  | { type: 'wire'; claimed: number; onWire: number }
  | { type: 'stopping'; reason: string };
