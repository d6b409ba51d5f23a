import { runDoctor, type ApiSettings, type DoctorReport } from '../alliance/doctor.js';
import { API_RULE_SETTINGS } from '../config.js';
import { EXIT, type ExitCode } from '../errors.js';
import { loggerOf, printJson, type CommandIO } from './context.js';
import { maskUrl } from '../log.js';

export interface DoctorCommandOptions {
  /** Also send an initiate the server must refuse, to learn how it wants the mobile number. */
  probeInitiate?: boolean;
  /** Clock, for tests. */
  now?: () => number;
}

/** Exit codes: 0 ready; 2 configuration missing or settings to change; 6 unreachable or refused. */
export function doctorExitCode(r: DoctorReport): ExitCode {
  switch (r.verdict) {
    case 'ok':
      return EXIT.ok;
    case 'missing_configuration':
    case 'settings_differ':
      return EXIT.usage;
    case 'unreachable':
    case 'refused':
    case 'server_problem':
      return EXIT.apiUnavailable;
  }
}

const quote = (v: string) => (/^[A-Za-z0-9._-]+$/.test(v) ? v : `'${v}'`);

/** The settings as command-line flags, e.g. "--get-body-mode '{}' --json-escape php --timestamp-unit s --mobile-as-number". */
export function settingsAsFlags(s: ApiSettings): string {
  const n = API_RULE_SETTINGS;
  return [
    `${n.getBodyMode.flag} ${quote(s.getBodyMode)}`,
    `${n.escape.flag} ${quote(s.escape)}`,
    `${n.timestampUnit.flag} ${quote(s.timestampUnit)}`,
    s.mobileAsNumber ? n.mobileAsNumber.flag : n.mobileAsNumber.flag.replace(/^--/, '--no-'),
  ].join(' ');
}

/** The settings as environment variables. */
export function settingsAsEnv(s: ApiSettings): Record<string, string> {
  const n = API_RULE_SETTINGS;
  return {
    [n.getBodyMode.env]: s.getBodyMode,
    [n.escape.env]: s.escape,
    [n.timestampUnit.env]: s.timestampUnit,
    [n.mobileAsNumber.env]: String(s.mobileAsNumber),
  };
}

const LABEL: Record<keyof ApiSettings, string> = {
  getBodyMode: 'the GET body line',
  escape: 'the body encoding',
  timestampUnit: 'the timestamp unit',
  mobileAsNumber: 'the mobile number type',
};

const MARK = { pass: '[ok]  ', warn: '[warn]', fail: '[FAIL]', info: '[info]' } as const;

const VERDICT: Record<DoctorReport['verdict'], string> = {
  ok: 'Ready: a payroll can run with the current settings.',
  settings_differ: 'Not ready with the current settings: set the ones above (they differ in: {changed}), then run doctor again.',
  missing_configuration: 'Not ready: the configuration is missing or malformed.',
  unreachable: 'Not ready: the API cannot be reached from this machine.',
  refused: 'Not ready: the API refuses this machine (see the failed checks above).',
  server_problem: 'Not ready: the API answered in a way a payroll cannot rely on (see above).',
};

/** `payouts doctor`: read-only probes of the configured API; prints the settings to use, never a secret. */
export async function doctorCommand(io: CommandIO, o: DoctorCommandOptions = {}): Promise<number> {
  const api = io.config.api;
  const current: ApiSettings = {
    getBodyMode: api.getBodyMode,
    escape: api.escape,
    timestampUnit: api.timestampUnit,
    mobileAsNumber: api.mobileAsNumber,
  };
  const r = await runDoctor({
    baseUrl: api.baseUrl,
    accessKey: api.accessKey,
    secretKey: api.secretKey,
    current,
    timeoutMs: Math.min(api.timeoutMs, 15_000),
    probeInitiate: o.probeInitiate ?? false,
    logger: loggerOf(io),
    ...(o.now ? { now: o.now } : {}),
  });
  const code = doctorExitCode(r);
  const env = settingsAsEnv(r.settings);
  if (io.json) {
    printJson(io, {
      verdict: r.verdict,
      exit_code: code,
      checks: r.checks,
      settings: {
        get_body_mode: r.settings.getBodyMode,
        json_escape: r.settings.escape,
        timestamp_unit: r.settings.timestampUnit,
        mobile_as_number: r.settings.mobileAsNumber,
      },
      sources: r.sources,
      changed: r.changed,
      flags: settingsAsFlags(r.settings),
      env,
      clock_skew_ms: r.clockSkewMs ?? null,
    });
    return code;
  }
  io.out(`payouts doctor${api.baseUrl ? `: ${maskUrl(api.baseUrl)}` : ''}`);
  for (const c of r.checks) io.out(`  ${MARK[c.status]} ${c.id.padEnd(13)} ${c.detail}`);
  const keys = Object.keys(r.sources) as (keyof ApiSettings)[];
  const probed = keys.filter((k) => r.sources[k] === 'probed');
  // Settings nobody asked the server about would only repeat the configuration.
  if (probed.length > 0) {
    const kept = keys.filter((k) => r.sources[k] === 'kept');
    io.out('');
    io.out(`Settings to use (${kept.length ? `asked of the server except ${kept.map((k) => LABEL[k]).join(', ')}, kept as configured` : 'all asked of the server'}):`);
    io.out(`  flags: ${settingsAsFlags(r.settings)}`);
    io.out(`  env:   ${Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`).join(' ')}`);
  }
  io.out('');
  io.out(VERDICT[r.verdict].replace('{changed}', r.changed.map((k) => LABEL[k]).join(', ')));
  return code;
}
