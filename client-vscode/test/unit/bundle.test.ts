import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { bundledInterpreter, chooseServer, failureSummary, installSteps, parseManifest, stampFor, stampMatches } from '../../src/logic/bundle';
import { Interpreter } from '../../src/logic/interpreter';

const MANIFEST = {
  version: '0.1.0',
  requirement: 'route-agent==0.1.0',
  pip: 'pip-26.3-py3-none-any.whl',
  wheels: ['pip-26.3-py3-none-any.whl', 'route_agent-0.1.0-py3-none-any.whl'],
  builtWith: { python: 'cp311', platform: 'linux-x86_64' },
};
const BASE: Interpreter = { command: '/usr/bin/python3', args: [], source: 'default' };
const SETTING: Interpreter = { command: '/opt/py/bin/python', args: [], source: 'setting' };

describe('parseManifest', () => {
  test('reads what bundle-server.mjs writes', () => {
    assert.deepEqual(parseManifest(JSON.stringify(MANIFEST)), MANIFEST);
  });
  test('no bundle, or a broken one, is undefined', () => {
    assert.equal(parseManifest(undefined), undefined);
    assert.equal(parseManifest('{'), undefined);
    assert.equal(parseManifest(JSON.stringify({ ...MANIFEST, wheels: 'x' })), undefined);
    assert.equal(parseManifest(JSON.stringify({ ...MANIFEST, pip: 'pip-1.whl' })), undefined, 'pip must be one of the wheels');
  });
});

describe('chooseServer', () => {
  const bundle = parseManifest(JSON.stringify(MANIFEST));
  test('a routeAgent.python.path that has route-agent wins over the bundle', () => {
    assert.deepEqual(chooseServer({ kind: 'ok', version: '0.1.0' }, SETTING, bundle), { kind: 'use', interpreter: SETTING });
  });
  test('missing or too old: install the bundle into an environment made from that interpreter', () => {
    assert.deepEqual(chooseServer({ kind: 'missing', detail: 'No module named route_agent' }, BASE, bundle), { kind: 'install', base: BASE });
    assert.deepEqual(chooseServer({ kind: 'too-old', version: '0.0.1' }, SETTING, bundle), { kind: 'install', base: SETTING });
  });
  test('no Python to build from, or no bundle: the problem message', () => {
    assert.deepEqual(chooseServer({ kind: 'no-python', detail: 'no such file' }, SETTING, bundle), { kind: 'problem' });
    assert.deepEqual(chooseServer({ kind: 'missing', detail: '' }, BASE, undefined), { kind: 'problem' });
  });
});

describe('installSteps', () => {
  const bundle = parseManifest(JSON.stringify(MANIFEST))!;
  test('a venv without pip, then the bundled pip installs the bundled wheels offline', () => {
    const [create, install] = installSteps(bundle, '/ext/bundled', '/store/server-env', { command: 'conda', args: ['run', 'python'], source: 'python-extension' }, true, 'linux');
    assert.deepEqual([create.command, ...create.args], ['conda', 'run', 'python', '-m', 'venv', '--without-pip', '/store/server-env']);
    assert.equal(install.command, '/store/server-env/bin/python');
    assert.equal(install.args[0], '/ext/bundled/wheels/pip-26.3-py3-none-any.whl/pip');
    assert.ok(install.args.includes('--no-index'));
    assert.deepEqual(install.args.slice(-3), ['--find-links', '/ext/bundled/wheels', 'route-agent==0.1.0']);
  });
  test('the second try may use pip\'s index for what the bundle lacks', () => {
    const install = installSteps(bundle, '/b', '/v', BASE, false, 'linux')[1];
    assert.ok(!install.args.includes('--no-index'));
    assert.ok(install.args.includes('--find-links'));
  });
  test('Windows layout', () => {
    assert.equal(bundledInterpreter('C:\\s\\env', 'win32').command.endsWith('python.exe'), true);
  });
});

describe('stamp', () => {
  const bundle = parseManifest(JSON.stringify(MANIFEST))!;
  test('the environment is reused for the same bundle and base interpreter only', () => {
    const text = JSON.stringify(stampFor(bundle, BASE));
    assert.equal(stampMatches(text, bundle, BASE), true);
    assert.equal(stampMatches(text, bundle, SETTING), false);
    assert.equal(stampMatches(text, { ...bundle, version: '0.2.0' }, BASE), false);
    assert.equal(stampMatches(undefined, bundle, BASE), false);
    assert.equal(stampMatches('garbage', bundle, BASE), false);
  });
});

test('failureSummary names the step and pip\'s error line', () => {
  const step = { title: 'Installing route-agent 0.1.0', command: 'py', args: [] };
  const output = 'Looking in links: /b\nERROR: Could not find a version that satisfies the requirement pydantic-core==2.50.5\nmore';
  assert.equal(failureSummary(step, output), 'Installing route-agent 0.1.0 failed: ERROR: Could not find a version that satisfies the requirement pydantic-core==2.50.5');
});
