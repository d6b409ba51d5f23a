import type { Dispatcher } from 'undici';
import type { Ticket } from './gate.js';

/**
 * The rate gate's ticket, told the moment its request is written. undici writes a request later than the
 * call that hands it over (after a connection is free and the event loop comes back to it: on a busy
 * runner, tens to hundreds of milliseconds later, measured in BENCHMARKS.md "Rate limit"), so `sent()` is
 * called by the connection itself, right before the request's first byte goes on the socket (undici's
 * onConnect / onRequestStart). A request that never reached a socket (aborted or failed while queued)
 * cancels its ticket instead, and is known never to have reached the server (the client then reports it
 * as not sent, even when it was the timeout that ended it: nothing for the API to have executed).
 */
export const WIRE = Symbol('payouts.wire');

/**
 * What one request learns from its connection: whether it was written (or answered) at all. A request that
 * failed or timed out before that never reached the server: certainly not executed.
 */
export interface WireState {
  ticket?: Ticket | undefined;
  written: boolean;
}

export type WiredOptions = Dispatcher.DispatchOptions & { [WIRE]?: WireState };

/**
 * The handler as it is, whichever of undici's two handler styles it uses, with the ticket settled on the
 * first of: the request starting on a connection and not aborted there (sent: its bytes follow in the same
 * call), a response (sent: a dispatcher that answers without a connection, such as a mock, starts
 * nothing), an error before either (never sent: cancelled).
 */
function withTicket(handler: Dispatcher.DispatchHandler, wire: WireState): Dispatcher.DispatchHandler {
  let settled = false;
  const settle = (sent: boolean) => {
    if (settled) return;
    settled = true;
    wire.written = sent;
    if (sent) wire.ticket?.sent();
    else wire.ticket?.cancel();
  };
  const SENT = new Set<PropertyKey>(['onHeaders', 'onResponseStart']);
  const FAILED = new Set<PropertyKey>(['onError', 'onResponseError']);
  return new Proxy(handler, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      // The request is on a connection and about to be written, unless the handler aborts it right there
      // (a request given up while it waited is handed to a connection only to be aborted, never written).
      if (prop === 'onConnect') {
        return (abort: (e?: Error) => void, ...rest: unknown[]) => {
          let aborted = false;
          const r = fn.call(target, (e?: Error) => ((aborted = true), abort(e)), ...rest);
          if (!aborted) settle(true);
          return r;
        };
      }
      if (prop === 'onRequestStart') {
        return (controller: { aborted?: boolean }, ...rest: unknown[]) => {
          const r = fn.call(target, controller, ...rest);
          if (!controller.aborted) settle(true);
          return r;
        };
      }
      if (SENT.has(prop)) return (...a: unknown[]) => (settle(true), fn.apply(target, a));
      if (FAILED.has(prop)) return (...a: unknown[]) => (settle(false), fn.apply(target, a));
      return fn.bind(target);
    },
  });
}

/** Dispatcher interceptor: a request carrying a WireState learns whether it was written, and its ticket is settled then. */
export const ticketOnWire: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
  const wire = (opts as WiredOptions)[WIRE];
  if (!wire) return dispatch(opts, handler);
  return dispatch(opts, withTicket(handler, wire));
};
