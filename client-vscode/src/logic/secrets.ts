/**
 * API keys: which providers take one, where each is kept in SecretStorage, and how they reach the
 * server: only as environment variables of its process, never in settings, options or logs.
 */

export interface ProviderKey {
  id: string;
  label: string;
  envVar: string;
}

export const KNOWN_PROVIDERS: readonly ProviderKey[] = [
  { id: 'openrouter', label: 'OpenRouter', envVar: 'OPENROUTER_API_KEY' },
  { id: 'openai', label: 'OpenAI', envVar: 'OPENAI_API_KEY' },
];

const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,127}$/;

/** A custom provider's variable (an OpenAI-compatible server's `api_key_env`). */
export function validEnvVarName(name: string): string | undefined {
  if (!ENV_NAME.test(name)) {
    return 'Use capital letters, digits and underscores, e.g. MY_SERVER_API_KEY.';
  }
  if (!/(_KEY|_TOKEN)$/.test(name)) {
    return 'The name should end in _KEY or _TOKEN so that route-agent keeps it out of check processes.';
  }
  return undefined;
}

export function secretKey(envVar: string): string {
  return `routeAgent.apiKey.${envVar}`;
}

/** The server's environment: the editor's, plus the stored keys (a stored key wins). */
export function serverEnvironment(base: NodeJS.ProcessEnv, keys: ReadonlyMap<string, string>, stateDir: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const [name, value] of keys) {
    if (value !== '') {
      env[name] = value;
    }
  }
  if (stateDir !== undefined) {
    env.ROUTE_AGENT_STATE_DIR = stateDir;
  }
  // Python must not buffer the log on stderr, and stdout is the protocol.
  env.PYTHONUNBUFFERED = '1';
  return env;
}

/** Replace every stored key's value in `text` (for anything that might reach a log). */
export function redact(text: string, keys: Iterable<string>): string {
  let out = text;
  for (const key of keys) {
    if (key.length >= 8) {
      out = out.split(key).join('***');
    }
  }
  return out;
}
