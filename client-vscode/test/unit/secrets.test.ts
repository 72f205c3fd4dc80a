import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { KNOWN_PROVIDERS, redact, secretKey, serverEnvironment, validEnvVarName } from '../../src/logic/secrets';

describe('API keys', () => {
  test('known providers use the variables the server reads', () => {
    assert.deepEqual(KNOWN_PROVIDERS.map((p) => p.envVar), ['OPENROUTER_API_KEY', 'OPENAI_API_KEY']);
    assert.equal(secretKey('OPENAI_API_KEY'), 'routeAgent.apiKey.OPENAI_API_KEY');
  });
  test('custom variable names are checked', () => {
    assert.equal(validEnvVarName('LOCAL_LLM_API_KEY'), undefined);
    assert.ok(validEnvVarName('lower_key'));
    assert.ok(validEnvVarName('PATH'), 'a name that is not a key or token is refused');
    assert.ok(validEnvVarName('A B_KEY'));
  });
  test('keys reach the server only through its environment; the editor environment is not changed', () => {
    const base = { PATH: '/usr/bin', OPENAI_API_KEY: 'from-shell' };
    const env = serverEnvironment(base, new Map([['OPENAI_API_KEY', 'sk-stored'], ['OPENROUTER_API_KEY', '']]), '/tmp/state');
    assert.equal(env.OPENAI_API_KEY, 'sk-stored');
    assert.equal(env.OPENROUTER_API_KEY, undefined, 'an empty stored key is not handed over');
    assert.equal(env.ROUTE_AGENT_STATE_DIR, '/tmp/state');
    assert.equal(env.PYTHONUNBUFFERED, '1');
    assert.equal(base.OPENAI_API_KEY, 'from-shell');
  });
  test('redact replaces stored keys in log text', () => {
    assert.equal(redact('failed with sk-abcdefgh123 in header', ['sk-abcdefgh123']), 'failed with *** in header');
    assert.equal(redact('short', ['abc']), 'short', 'very short values are not treated as keys');
  });
});
