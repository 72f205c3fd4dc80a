import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { InspectedValue, LogLevel, needsRestart, resolveSettings, serverLogLevel, serverOptions, substituteVariables, traceLevel } from '../../src/logic/settings';

function layers(values: Record<string, InspectedValue>) {
  return (key: string) => values[key];
}

describe('resolveSettings', () => {
  test('defaults when nothing is set', () => {
    const { settings, problems } = resolveSettings(() => undefined, true);
    assert.deepEqual(problems, []);
    assert.equal(settings.pythonPath, undefined);
    assert.equal(settings.sandbox, 'auto');
    assert.equal(settings.lane, 'auto');
    assert.equal(settings.debounceMs, 300);
    assert.deepEqual(settings.providerBaseUrls, {});
  });

  test('folder value wins over workspace and user values in a trusted workspace', () => {
    const { settings } = resolveSettings(
      layers({ 'python.path': { globalValue: '/usr/bin/python3', workspaceValue: '/ws/python', workspaceFolderValue: '/folder/python' } }),
      true,
    );
    assert.equal(settings.pythonPath, '/folder/python');
  });

  for (const key of ['python.path', 'policyPath', 'stateDir'] as const) {
    test(`untrusted workspace: ${key} comes only from the user's settings`, () => {
      const { settings } = resolveSettings(
        layers({ [key]: { globalValue: '/home/me/value', workspaceValue: '/evil/value', workspaceFolderValue: '/evil/folder' } }),
        false,
      );
      const field = { 'python.path': 'pythonPath', policyPath: 'policyPath', stateDir: 'stateDir' }[key] as 'pythonPath' | 'policyPath' | 'stateDir';
      assert.equal(settings[field], '/home/me/value');
    });
  }

  test('untrusted workspace: the sandbox cannot be switched off by the workspace', () => {
    const { settings } = resolveSettings(layers({ sandbox: { workspaceValue: 'off' } }), false);
    assert.equal(settings.sandbox, 'auto');
  });

  test('untrusted workspace: unrestricted settings still come from the workspace', () => {
    const { settings } = resolveSettings(layers({ lane: { workspaceValue: 'strong' }, debounceMs: { workspaceValue: 50 } }), false);
    assert.equal(settings.lane, 'strong');
    assert.equal(settings.debounceMs, 50);
  });

  test('provider base URLs are read from the user scope only, even in a trusted workspace', () => {
    const { settings } = resolveSettings(
      layers({
        'providers.openai.baseUrl': { globalValue: 'http://127.0.0.1:9000/v1', workspaceValue: 'https://attacker.example/v1' },
        'providers.openrouter.baseUrl': { workspaceValue: 'https://attacker.example/v1' },
      }),
      true,
    );
    assert.deepEqual(settings.providerBaseUrls, { openai: 'http://127.0.0.1:9000/v1' });
  });

  test('invalid values are reported once each and replaced by defaults; valid ones are kept', () => {
    const { settings, problems } = resolveSettings(
      layers({
        sandbox: { globalValue: 'sometimes' },
        debounceMs: { globalValue: -5 },
        lane: { globalValue: 'fast' },
        'providers.ollama.baseUrl': { globalValue: 'file:///etc/passwd' },
        policyPath: { globalValue: 42 },
      }),
      true,
    );
    assert.equal(settings.sandbox, 'auto');
    assert.equal(settings.debounceMs, 300);
    assert.equal(settings.lane, 'fast');
    assert.deepEqual(settings.providerBaseUrls, {});
    assert.equal(settings.policyPath, undefined);
    assert.equal(problems.length, 4);
    assert.ok(problems.some((p) => p.includes('routeAgent.sandbox')));
    assert.ok(problems.some((p) => p.includes('routeAgent.debounceMs')));
    assert.ok(problems.some((p) => p.includes('providers.ollama.baseUrl')));
    assert.ok(problems.some((p) => p.includes('routeAgent.policyPath')));
  });

  test('path variables are substituted', () => {
    const { settings } = resolveSettings(
      layers({ 'python.path': { globalValue: '${workspaceFolder}/.venv/bin/python' }, stateDir: { globalValue: '~/state' } }),
      true,
      { workspaceFolder: '/repo', home: '/home/me' },
    );
    assert.equal(settings.pythonPath, '/repo/.venv/bin/python');
    assert.equal(settings.stateDir, '/home/me/state');
  });

  test('blank strings mean unset', () => {
    const { settings } = resolveSettings(layers({ 'python.path': { globalValue: '   ' } }), true);
    assert.equal(settings.pythonPath, undefined);
  });
});

describe('substituteVariables', () => {
  test('leaves a ~ inside a path alone', () => {
    assert.equal(substituteVariables('/a/~b', { home: '/h' }), '/a/~b');
    assert.equal(substituteVariables('${userHome}/x', { home: '/h' }), '/h/x');
  });
});

describe('log level and trace', () => {
  test('Trace shows payloads, Debug method names, anything else no trace', () => {
    assert.equal(traceLevel(LogLevel.Trace), 'verbose');
    assert.equal(traceLevel(LogLevel.Debug), 'messages');
    assert.equal(traceLevel(LogLevel.Info), 'off');
    assert.equal(traceLevel(LogLevel.Off), 'off');
  });
  test('server log level follows the channel', () => {
    assert.equal(serverLogLevel(LogLevel.Trace), 'debug');
    assert.equal(serverLogLevel(LogLevel.Debug), 'debug');
    assert.equal(serverLogLevel(LogLevel.Info), 'info');
    assert.equal(serverLogLevel(LogLevel.Warning), 'warning');
    assert.equal(serverLogLevel(LogLevel.Error), 'error');
    assert.equal(serverLogLevel(LogLevel.Off), 'error');
  });
});

describe('serverOptions', () => {
  const base = resolveSettings(layers({ policyPath: { globalValue: 'policy.yaml' }, 'providers.openai.baseUrl': { globalValue: 'http://127.0.0.1:1/v1' } }), true).settings;

  test('camelCase options with the trust flag; never a key, never an approval (the server keeps those)', () => {
    const options = serverOptions({ settings: base, logLevel: LogLevel.Debug, trusted: true });
    assert.equal(options.policyPath, 'policy.yaml');
    assert.equal(options.logLevel, 'debug');
    assert.equal(options.workspaceTrusted, true);
    assert.ok(!('policyApprovals' in options));
    assert.deepEqual(options.providerBaseUrls, { openai: 'http://127.0.0.1:1/v1' });
    assert.ok(!JSON.stringify(options).toLowerCase().includes('apikey'));
  });

  test('an untrusted workspace says so', () => {
    const options = serverOptions({ settings: base, logLevel: LogLevel.Info, trusted: false });
    assert.equal(options.workspaceTrusted, false);
  });

  test('unset paths are omitted', () => {
    const options = serverOptions({ settings: resolveSettings(() => undefined, true).settings, logLevel: LogLevel.Info, trusted: true });
    assert.ok(!('policyPath' in options));
    assert.ok(!('stateDir' in options));
  });
});

describe('needsRestart', () => {
  const a = resolveSettings(() => undefined, true).settings;
  test('python path change restarts, lane change does not', () => {
    assert.equal(needsRestart(a, { ...a, pythonPath: '/x/python' }), true);
    assert.equal(needsRestart(a, { ...a, stateDir: '/x' }), true);
    assert.equal(needsRestart(a, { ...a, lane: 'strong' }), false);
  });
});
