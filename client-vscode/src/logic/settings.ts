/**
 * Client settings: raw values read from VS Code (every layer, via `inspect`) -> one resolved,
 * typed object, and from it the options sent to the server. Pure: no `vscode` import, so it is
 * unit-tested directly.
 *
 * Workspace trust is applied here as well as by VS Code: in an untrusted workspace a restricted
 * setting (one that names an executable, the policy, the state directory or the sandbox) is taken
 * only from the user's own settings, never from the workspace's.
 */

export const SECTION = 'routeAgent';

export const RESTRICTED_KEYS = ['python.path', 'policyPath', 'stateDir', 'sandbox'] as const;
export const PROVIDERS_WITH_BASE_URL = ['openrouter', 'openai', 'ollama'] as const;

export type Sandbox = 'auto' | 'required' | 'off';
export type Lane = 'auto' | 'fast' | 'strong';
export type ServerLogLevel = 'error' | 'warning' | 'info' | 'debug';
export type TraceLevel = 'off' | 'messages' | 'verbose';

/** What `WorkspaceConfiguration.inspect(key)` returns, reduced to the layers we use. */
export interface InspectedValue {
  defaultValue?: unknown;
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

export type Inspect = (key: string) => InspectedValue | undefined;

export interface ResolvedSettings {
  pythonPath: string | undefined;
  policyPath: string | undefined;
  stateDir: string | undefined;
  sandbox: Sandbox;
  lane: Lane;
  debounceMs: number;
  providerBaseUrls: Record<string, string>;
  showStatusBar: boolean;
}

export interface Resolution {
  settings: ResolvedSettings;
  /** One message per invalid value; the value is dropped and its default used. */
  problems: string[];
}

export interface VariableContext {
  workspaceFolder?: string;
  home?: string;
}

const DEFAULTS: ResolvedSettings = {
  pythonPath: undefined,
  policyPath: undefined,
  stateDir: undefined,
  sandbox: 'auto',
  lane: 'auto',
  debounceMs: 300,
  providerBaseUrls: {},
  showStatusBar: true,
};

function pick(inspect: Inspect, key: string, trusted: boolean): unknown {
  const layers = inspect(key);
  if (!layers) {
    return undefined;
  }
  const restricted = (RESTRICTED_KEYS as readonly string[]).includes(key);
  if (!trusted && restricted) {
    return layers.globalValue;
  }
  return layers.workspaceFolderValue ?? layers.workspaceValue ?? layers.globalValue;
}

/** `${workspaceFolder}`, `${userHome}` and a leading `~` in a path setting. */
export function substituteVariables(value: string, context: VariableContext): string {
  let out = value;
  if (context.home) {
    out = out.replace(/\$\{userHome\}/g, context.home);
    if (out === '~' || out.startsWith('~/')) {
      out = context.home + out.slice(1);
    }
  }
  if (context.workspaceFolder) {
    out = out.replace(/\$\{workspaceFolder\}/g, context.workspaceFolder);
  }
  return out;
}

function nonEmptyString(value: unknown, key: string, problems: string[]): string | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  if (typeof value !== 'string') {
    problems.push(`${SECTION}.${key} ignored: expected a string, got ${typeof value}`);
    return undefined;
  }
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], key: string, problems: string[], fallback: T): T {
  if (value === undefined || value === null || value === '') {
    return fallback;
  }
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) {
    return value as T;
  }
  problems.push(`${SECTION}.${key} ignored: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  return fallback;
}

export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Raw layers -> resolved settings; every invalid value is reported once and replaced by its default. */
export function resolveSettings(inspect: Inspect, trusted: boolean, context: VariableContext = {}): Resolution {
  const problems: string[] = [];
  const path = (key: string): string | undefined => {
    const raw = nonEmptyString(pick(inspect, key, trusted), key, problems);
    return raw === undefined ? undefined : substituteVariables(raw, context);
  };
  let debounceMs = DEFAULTS.debounceMs;
  const rawDebounce = pick(inspect, 'debounceMs', trusted);
  if (rawDebounce !== undefined && rawDebounce !== null) {
    if (typeof rawDebounce === 'number' && Number.isInteger(rawDebounce) && rawDebounce >= 0 && rawDebounce <= 60000) {
      debounceMs = rawDebounce;
    } else {
      problems.push(`${SECTION}.debounceMs ignored: expected an integer from 0 to 60000, got ${JSON.stringify(rawDebounce)}`);
    }
  }
  const providerBaseUrls: Record<string, string> = {};
  for (const provider of PROVIDERS_WITH_BASE_URL) {
    const key = `providers.${provider}.baseUrl`;
    // Application scope: only the user's own value counts, whatever a workspace file says.
    const layers = inspect(key);
    const raw = nonEmptyString(layers?.globalValue, key, problems);
    if (raw === undefined) {
      continue;
    }
    if (isHttpUrl(raw)) {
      providerBaseUrls[provider] = raw;
    } else {
      problems.push(`${SECTION}.${key} ignored: ${JSON.stringify(raw)} is not an http(s) URL`);
    }
  }
  const showStatusBar = pick(inspect, 'showStatusBar', trusted);
  const settings: ResolvedSettings = {
    pythonPath: path('python.path'),
    policyPath: path('policyPath'),
    stateDir: path('stateDir'),
    sandbox: oneOf(pick(inspect, 'sandbox', trusted), ['auto', 'required', 'off'] as const, 'sandbox', problems, DEFAULTS.sandbox),
    lane: oneOf(pick(inspect, 'lane', trusted), ['auto', 'fast', 'strong'] as const, 'lane', problems, DEFAULTS.lane),
    debounceMs,
    providerBaseUrls,
    showStatusBar: typeof showStatusBar === 'boolean' ? showStatusBar : DEFAULTS.showStatusBar,
  };
  return { settings, problems };
}

/**
 * The numeric log levels of `vscode.LogLevel` (Off 0, Trace 1, Debug 2, Info 3, Warning 4,
 * Error 5), mirrored so this module needs no `vscode` import.
 */
export const LogLevel = { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 } as const;

/** The output channel's level -> the server's `logLevel` option. */
export function serverLogLevel(level: number): ServerLogLevel {
  switch (level) {
    case LogLevel.Trace:
    case LogLevel.Debug:
      return 'debug';
    case LogLevel.Info:
      return 'info';
    case LogLevel.Warning:
      return 'warning';
    default:
      return 'error';
  }
}

/** The output channel's level -> the LSP message trace (Trace shows payloads, Debug the method names). */
export function traceLevel(level: number): TraceLevel {
  if (level === LogLevel.Trace) {
    return 'verbose';
  }
  if (level === LogLevel.Debug) {
    return 'messages';
  }
  return 'off';
}

export interface ServerOptionsInput {
  settings: ResolvedSettings;
  logLevel: number;
  trusted: boolean;
}

/**
 * The camelCase options sent as `initializationOptions` and answered to `workspace/configuration`
 * (section `routeAgent`). Paths the server resolves against the folder; no secret is ever here.
 */
export function serverOptions(input: ServerOptionsInput): Record<string, unknown> {
  const { settings } = input;
  const options: Record<string, unknown> = {
    lane: settings.lane,
    debounceMs: settings.debounceMs,
    logLevel: serverLogLevel(input.logLevel),
    sandbox: settings.sandbox,
    workspaceTrusted: input.trusted,
    riskNotifications: true,
    providerBaseUrls: { ...settings.providerBaseUrls },
  };
  if (settings.policyPath !== undefined) {
    options.policyPath = settings.policyPath;
  }
  if (settings.stateDir !== undefined) {
    options.stateDir = settings.stateDir;
  }
  return options;
}

/** Settings whose change needs a new server process (its command line or environment changes). */
export function needsRestart(before: ResolvedSettings, after: ResolvedSettings): boolean {
  return before.pythonPath !== after.pythonPath || before.stateDir !== after.stateDir;
}
