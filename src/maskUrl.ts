// Kept apart from log.ts (which loads pino) so that the settings can use it without slowing `--help`.

/** Removes userinfo (password) from a connection URL for display. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    // A token or password passed as a query parameter (?token=…, ?password=…) is a secret too.
    for (const k of [...u.searchParams.keys()]) if (/pass|token|secret|key|sig|auth/i.test(k)) u.searchParams.set(k, '****');
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
