import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { checkServer, chooseInterpreter, compareVersions, installCommand, parseVersion, problemMessage, serverCommand, spawnProblem, interpreterCandidates } from '../../src/logic/interpreter';

describe('chooseInterpreter', () => {
  test('the setting wins', () => {
    assert.deepEqual(chooseInterpreter('/opt/py/bin/python', ['/usr/bin/python3.12']), { command: '/opt/py/bin/python', args: [], source: 'setting' });
  });
  test("then the Python extension's interpreter, with its extra words", () => {
    assert.deepEqual(chooseInterpreter(undefined, ['conda', 'run', '-n', 'env', 'python']), {
      command: 'conda',
      args: ['run', '-n', 'env', 'python'],
      source: 'python-extension',
    });
  });
  test('then python3', () => {
    assert.deepEqual(chooseInterpreter('', undefined), { command: 'python3', args: [], source: 'default' });
    assert.deepEqual(chooseInterpreter(undefined, []), { command: 'python3', args: [], source: 'default' });
  });
  test('server command line', () => {
    assert.deepEqual(serverCommand(chooseInterpreter(undefined, ['conda', 'run', 'python'])), { command: 'conda', args: ['run', 'python', '-m', 'route_agent', 'serve'] });
  });
});

describe('versions', () => {
  test('parses click and bare formats', () => {
    assert.deepEqual(parseVersion('route-agent, version 0.1.0\n'), [0, 1, 0]);
    assert.deepEqual(parseVersion('1.2'), [1, 2, 0]);
    assert.equal(parseVersion('no version here'), undefined);
  });
  test('compares numerically', () => {
    assert.equal(compareVersions([0, 10, 0], [0, 9, 9]), 1);
    assert.equal(compareVersions([0, 1, 0], [0, 1, 0]), 0);
    assert.equal(compareVersions([0, 0, 9], [0, 1]), -1);
  });
});

describe('checkServer', () => {
  const python = chooseInterpreter(undefined, undefined);
  test('ok', () => {
    assert.deepEqual(checkServer({ exitCode: 0, stdout: 'route-agent, version 0.1.0\n', stderr: '' }), { kind: 'ok', version: '0.1.0' });
  });
  test('missing module gives the pip install command', () => {
    const check = checkServer({ exitCode: 1, stdout: '', stderr: '/usr/bin/python3: No module named route_agent\n' });
    assert.equal(check.kind, 'missing');
    const message = problemMessage(check, python, undefined);
    assert.ok(message?.includes('python3 -m pip install /path/to/route-agent'), message);
    assert.ok(!message?.includes('pip install route-agent'), 'route-agent is not on PyPI');
  });
  test('a checkout in the workspace gives the editable install', () => {
    const check = checkServer({ exitCode: 1, stdout: '', stderr: 'No module named route_agent' });
    const message = problemMessage(check, { command: '/w s/.venv/bin/python', args: [], source: 'setting' }, '/work/route agent');
    assert.ok(message?.includes("'/w s/.venv/bin/python' -m pip install -e '/work/route agent'"), message);
  });
  test('too old asks for an upgrade', () => {
    const check = checkServer({ exitCode: 0, stdout: 'route-agent, version 0.0.9', stderr: '' });
    assert.deepEqual(check, { kind: 'too-old', version: '0.0.9' });
    assert.ok(problemMessage(check, python, undefined)?.includes('python3 -m pip install --upgrade /path/to/route-agent'));
  });
  test('an interpreter that cannot start', () => {
    const check = checkServer({ spawnError: spawnProblem('ENOENT'), exitCode: null, stdout: '', stderr: '' });
    assert.equal(check.kind, 'no-python');
    const message = problemMessage(check, { command: '/nope', args: [], source: 'setting' }, undefined);
    assert.ok(message?.includes('routeAgent.python.path'), message);
    assert.ok(message?.includes('cannot run /nope (from the routeAgent.python.path setting): no such file.'), message);
    assert.ok(!message?.includes('ENOENT'), message);
  });
  test('spawn errors in words', () => {
    assert.equal(spawnProblem('ENOENT'), 'no such file');
    assert.match(spawnProblem('EACCES'), /permission denied/);
    assert.match(spawnProblem('EIO'), /EIO/);
  });
  test('garbage output counts as missing', () => {
    assert.equal(checkServer({ exitCode: 0, stdout: 'hello', stderr: '' }).kind, 'missing');
  });
  test('install command quotes nothing that needs no quoting', () => {
    assert.equal(installCommand(python, undefined, false), 'python3 -m pip install /path/to/route-agent');
  });
});

describe('interpreterCandidates', () => {
  test('workspace environments first, then python3 and python3.N on PATH, each once', () => {
    const files = new Set(['/w/.venv/bin/python', '/usr/bin/python3', '/usr/bin/python3.11', '/usr/local/bin/python3.12']);
    const dirs: Record<string, string[]> = {
      '/usr/local/bin': ['python3.12', 'pip3', 'python3-config'],
      '/usr/bin': ['python3.11', 'python3', 'python2'],
    };
    const found = interpreterCandidates('/usr/local/bin:/usr/bin:/missing:/usr/bin', ['/w'], (f) => files.has(f), (d) => {
      if (!(d in dirs)) {
        throw new Error('ENOENT');
      }
      return dirs[d];
    }, 'linux');
    assert.deepEqual(found, ['/w/.venv/bin/python', '/usr/local/bin/python3.12', '/usr/bin/python3', '/usr/bin/python3.11']);
  });
});
