"""Policy parsing, validation, layering, the floor and the cache: every error as FILE:LINE:COL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from route_agent.policy import (
    FLOOR_CONDITIONS,
    PolicyCache,
    PolicyError,
    check_policy_file,
    default_policy_text,
    effective_always_strong,
)
from route_agent.policy.loader import MAX_POLICY_BYTES, merge_layers, parse_layer, read_layer, validate

ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
)


def write(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def only_issue(path: Path) -> tuple[str, int, int, str]:
    with pytest.raises(PolicyError) as info:
        check_policy_file(path)
    issue = info.value.issues[0]
    return issue.file, issue.line, issue.column, issue.message


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        pytest.param("routing:\n  fast_max_score: abc\n", 2, 19, "valid integer", id="wrong-type-int"),
        pytest.param("routing:\n  confidence_threshold: 1.5\n", 2, 25, "less than or equal to 1", id="out-of-range"),
        pytest.param("routing:\n  always_strong_if: [schema_change, vibes]\n", 2, 37, "routing.always_strong_if.1",
                     id="unknown-condition"),
        pytest.param("models:\n  fast:\n    provider: nope\n    model: x\n", 3, 15, "models.fast.provider",
                     id="bad-provider"),
        pytest.param("weights:\n  files: {per: 1, max: lots}\n", 2, 24, "weights.files.max", id="wrong-type-flow-map"),
        pytest.param("routing:\n  fast_max_scor: 3\n", 2, 3, "unknown key 'routing.fast_max_scor'", id="unknown-key"),
        pytest.param("routing:\n  nested:\n    - 1\n", 2, 3, "unknown key 'routing.nested'", id="unknown-key-collection"),
        pytest.param("colour: blue\n", 1, 1, "unknown key 'colour'", id="unknown-top-level-key"),
        pytest.param(ALIAS_BOMB, 2, 8, "aliases", id="alias-bomb"),
        pytest.param("a: &x 1\nrouting:\n  fast_max_score: *x\n", 3, 19, "aliases", id="alias-scalar"),
        pytest.param("models:\n  fast: !!python/object:os.system {}\n", 2, 9, "'!!python/object:os.system'",
                     id="python-object-tag"),
        pytest.param("routing:\n  fast_max_score: !!python/name:os.system\n", 2, 19, "!!python/name", id="python-name-tag"),
        pytest.param("routing: !custom {}\n", 1, 10, "'!custom'", id="custom-tag"),
        pytest.param("routing:\n  note: !!timestamp 2024-01-01\n", 2, 9, "!!timestamp", id="explicit-timestamp-tag"),
        pytest.param("base: &b {fast_max_score: 3}\nrouting:\n  <<: *b\n", 3, 3, "merge keys", id="merge-key"),
        pytest.param("routing:\n  fast_max_score: 3\n  fast_max_score: 4\n", 3, 3, "duplicate key 'fast_max_score'",
                     id="duplicate-key"),
        pytest.param("routing:\n  1: 2\n", 2, 3, "keys must be strings", id="non-string-key"),
        pytest.param("routing:\n  fast_max_score: 9\n  strong_min_score: 5\n", 2, 19, "must be below",
                     id="thresholds-inverted"),
        pytest.param("routing:\n  strong_min_score: 5\n", 2, 21, "must be below", id="thresholds-inverted-vs-default"),
        pytest.param(
            "models:\n  strong:\n    provider: openrouter\n    model: big\n"
            "    fallback: {provider: openrouter, model: small, tier: fast}\n",
            5, 5, "weaker tier", id="fallback-weaker-tier"),
        pytest.param("routing:\n  fast_max_score: [1\n", 3, 1, "invalid YAML", id="invalid-yaml"),
        pytest.param("- a\n- b\n", 1, 1, "must be a mapping", id="not-a-mapping"),
        pytest.param("models:\n  fast:\n    model: x\n    provider: openai\n    api_key_env: 'bad name'\n", 5, 18,
                     "api_key_env", id="bad-env-name"),
        pytest.param("verification:\n  fast:\n    - {name: tests, run: 'pytest -q'}\n", 3, 26, "valid list",
                     id="shell-string-command"),
    ],
)
def test_policy_errors_name_file_line_column(tmp_path: Path, text: str, line: int, column: int, fragment: str) -> None:
    path = write(tmp_path, text)
    file, got_line, got_column, message = only_issue(path)
    assert file == str(path)
    assert (got_line, got_column) == (line, column), message
    assert fragment in message
    assert str(PolicyError([])) == ""


@pytest.mark.parametrize(
    ("raw", "line", "column", "fragment"),
    [
        pytest.param(b"routing:\n  # caf\xe9\n", 2, 8, "not valid UTF-8", id="invalid-utf8"),
        pytest.param(b"# " + b"x" * MAX_POLICY_BYTES + b"\n", 1, 1, "64 KB", id="over-64kb"),
    ],
)
def test_policy_file_level_errors(tmp_path: Path, raw: bytes, line: int, column: int, fragment: str) -> None:
    path = write(tmp_path, raw)
    file, got_line, got_column, message = only_issue(path)
    assert (file, got_line, got_column) == (str(path), line, column)
    assert fragment in message


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda p: p / "missing.yaml", "not found", id="missing-file"),
        pytest.param(lambda p: p, "directory", id="directory"),
    ],
)
def test_unreadable_policy_paths(tmp_path: Path, make: object, fragment: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(PolicyError) as info:
        read_layer(path)
    assert fragment in info.value.issues[0].message
    assert str(info.value).startswith(f"{path}:1:1: ")


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(PolicyError) as info:
        parse_layer("a: [" * (MAX_POLICY_BYTES // 2) + "\n", "big.yaml")
    assert "64 KB" in info.value.issues[0].message


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # The bomb must be refused at composition, never expanded.
    bomb = "a: &a [x]\n" + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    with pytest.raises(PolicyError, match="aliases"):
        parse_layer(bomb, "bomb.yaml")


def test_implicit_date_is_text_not_a_refused_tag(tmp_path: Path) -> None:
    layer = parse_layer("models:\n  fast: {provider: openai, model: 2024-05-13}\n", "p.yaml")
    assert layer.data["models"]["fast"]["model"] == "2024-05-13"


def test_several_validation_errors_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "routing:\n  fast_max_score: x\n  confidence_threshold: 7\nweights:\n  nope: 1\n")
    with pytest.raises(PolicyError) as info:
        check_policy_file(path)
    lines = sorted(i.line for i in info.value.issues)
    assert lines == [2, 3, 5]
    assert all(str(i).startswith(f"{path}:{i.line}:{i.column}: ") for i in info.value.issues)


def test_default_policy_is_valid_and_matches_design_notes() -> None:
    loaded = PolicyCache().load()
    policy = loaded.policy
    assert policy.routing.fast_max_score == 6
    assert policy.routing.strong_min_score == 7
    assert policy.weights.files.per == 1 and policy.weights.files.max == 8
    assert policy.weights.test_failures.per == 2 and policy.weights.test_failures.max == 6
    assert (policy.weights.schema_change, policy.weights.auth_code, policy.weights.new_code) == (5, 5, 3)
    assert policy.models.fast.model == "anthropic/claude-3.5-haiku"
    assert policy.models.strong.model == "anthropic/claude-3.7-sonnet"
    assert loaded.sources == ("<built-in default.yaml>",)


def test_default_policy_needs_one_key() -> None:
    """A new user sets the one key the dry run names; the verifier must not need a second one."""
    from route_agent.policy.keys import api_key_env_for

    policy = PolicyCache().load().policy
    assert {api_key_env_for(spec) for spec in (policy.models.fast, policy.models.strong, policy.models.verifier)} == {"OPENROUTER_API_KEY"}


def test_shipped_policy_file_matches_packaged_default() -> None:
    shipped = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
    assert shipped.read_text("utf-8") == default_policy_text()


def test_layering_default_then_user_then_repo(tmp_path: Path) -> None:
    user = write(tmp_path, "routing:\n  fast_max_score: 4\n  strong_min_score: 9\nbudgets:\n  per_day_usd: 10\n", "user.yaml")
    repo_root = tmp_path / "repo"
    (repo_root / ".route-agent").mkdir(parents=True)
    repo_policy = repo_root / ".route-agent" / "policy.yaml"
    repo_policy.write_text("routing:\n  fast_max_score: 3\nmodels:\n  fast: {provider: ollama, model: qwen2.5-coder}\n")
    loaded = PolicyCache().for_workspace(repo_root, None, user)
    policy = loaded.policy
    assert policy.routing.fast_max_score == 3  # repo beats user
    assert policy.routing.strong_min_score == 9  # user beats default
    assert policy.budgets.per_day_usd == 10
    assert policy.budgets.per_task_usd == 5.0  # default kept
    assert policy.models.fast.provider == "ollama"
    assert policy.models.fast.max_context_tokens == 32000  # mappings merge key by key
    assert policy.models.strong.model == "anthropic/claude-3.7-sonnet"
    # the checks detected in the repository (none here) sit between the default and the user's file
    assert loaded.sources == ("<built-in default.yaml>", "<detected checks: none found>", str(user), str(repo_policy))


def test_explicit_policy_replaces_the_repository_policy(tmp_path: Path) -> None:
    (tmp_path / ".route-agent.yaml").write_text("routing:\n  fast_max_score: 1\n")
    explicit = write(tmp_path, "routing:\n  fast_max_score: 2\n", "explicit.yaml")
    loaded = PolicyCache().for_workspace(tmp_path, explicit, tmp_path / "no-user.yaml")
    assert loaded.policy.routing.fast_max_score == 2
    assert loaded.sources[-1] == str(explicit)


def test_lists_replace_rather_than_extend(tmp_path: Path) -> None:
    path = write(tmp_path, "paths:\n  docs: ['*.adoc']\n")
    assert check_policy_file(path).policy.paths.docs == ["*.adoc"]


def test_error_in_a_later_layer_points_at_that_layer(tmp_path: Path) -> None:
    user = write(tmp_path, "routing:\n  fast_max_score: 2\n", "user.yaml")
    repo = write(tmp_path, "\n\nrouting:\n  strong_min_score: 1\n", "repo.yaml")
    with pytest.raises(PolicyError) as info:
        PolicyCache().load(user, repo)
    issue = info.value.issues[0]
    assert (issue.file, issue.line) == (str(repo), 4)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("routing:\n  always_strong_if: []\n", id="empty-list"),
        pytest.param("routing:\n  always_strong_if: [new_code]\n", id="other-condition-only"),
        pytest.param("routing:\n  always_strong_if: [deletions, lookalike_path]\n", id="extra-conditions"),
    ],
)
def test_floor_cannot_be_removed(tmp_path: Path, text: str) -> None:
    loaded = check_policy_file(write(tmp_path, text))
    conditions = loaded.always_strong_conditions
    assert conditions[: len(FLOOR_CONDITIONS)] == FLOOR_CONDITIONS
    for condition in loaded.policy.routing.always_strong_if:
        assert condition in conditions
    assert effective_always_strong(loaded.policy) == conditions


def test_floor_conditions_are_the_documented_ones() -> None:
    assert set(FLOOR_CONDITIONS) == {
        "schema_change", "auth_code", "secrets_handling", "ci_config", "deploy_config", "production_incident"}


def test_layer_positions_track_nested_values() -> None:
    layer = parse_layer("models:\n  fast:\n    provider: openai\n    model: m\nlist:\n  - a\n  - b\n", "p.yaml")
    assert layer.positions[("models", "fast", "provider")] == (3, 15)
    assert layer.positions[("models", "fast")] == (2, 3)
    assert layer.positions[("list", 1)] == (7, 5)
    assert layer.key_positions[("models", "fast", "model")] == (4, 5)


def test_merge_forgets_positions_of_replaced_values() -> None:
    low = parse_layer("paths:\n  docs:\n    - a\n    - b\n    - c\n", "low.yaml")
    high = parse_layer("paths:\n  docs: [x]\n", "high.yaml")
    merged = merge_layers([low, high])
    assert ("paths", "docs", 2) not in merged.origin
    assert merged.origin[("paths", "docs", 0)][0] == "high.yaml"
    assert merged.data["paths"]["docs"] == ["x"]
    with pytest.raises(PolicyError):
        validate(merged, "high.yaml")  # no models section at all


def test_empty_file_is_an_empty_layer(tmp_path: Path) -> None:
    assert parse_layer("", "empty.yaml").data == {}
    assert parse_layer("# only a comment\n", "c.yaml").data == {}
    loaded = check_policy_file(write(tmp_path, ""))
    assert loaded.policy.routing.fast_max_score == 6


def test_c_loader_is_used_when_available() -> None:
    from route_agent.policy import loader

    if yaml.__with_libyaml__:
        assert loader._Loader is yaml.CSafeLoader


class TestCache:
    def test_reload_is_cached_until_the_file_changes(self, tmp_path: Path) -> None:
        path = write(tmp_path, "routing:\n  fast_max_score: 3\n")
        cache = PolicyCache()
        first = cache.load(path)
        assert cache.load(path) is first
        path.write_text("routing:\n  fast_max_score: 4\n")  # same size, new mtime
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        second = cache.load(path)
        assert second is not first
        assert second.policy.routing.fast_max_score == 4

    def test_size_change_with_same_mtime_is_noticed(self, tmp_path: Path) -> None:
        path = write(tmp_path, "routing:\n  fast_max_score: 3\n")
        cache = PolicyCache()
        first = cache.load(path)
        mtime = path.stat().st_mtime_ns
        path.write_text("routing:\n  fast_max_score: 3\n  strong_min_score: 8\n")
        os.utime(path, ns=(mtime, mtime))
        second = cache.load(path)
        assert second is not first
        assert second.policy.routing.strong_min_score == 8

    def test_layers_are_not_re_read_when_unchanged(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import route_agent.policy as policy_pkg

        path = write(tmp_path, "routing:\n  fast_max_score: 3\n")
        reads: list[Path] = []
        real = policy_pkg.read_layer

        def counting(p: Path) -> object:
            reads.append(p)
            return real(p)

        monkeypatch.setattr(policy_pkg, "read_layer", counting)
        cache = PolicyCache()
        cache.load(path)
        cache.load(path)
        cache.layer(path)
        assert reads == [path]

    def test_a_deleted_file_is_an_error_not_a_stale_hit(self, tmp_path: Path) -> None:
        path = write(tmp_path, "routing:\n  fast_max_score: 3\n")
        cache = PolicyCache()
        cache.load(path)
        path.unlink()
        with pytest.raises(PolicyError, match="not found"):
            cache.load(path)

    def test_a_broken_edit_is_reported_then_a_fix_is_picked_up(self, tmp_path: Path) -> None:
        path = write(tmp_path, "routing:\n  fast_max_score: 3\n")
        cache = PolicyCache()
        cache.load(path)
        path.write_text("routing:\n  fast_max_score: [\n")
        with pytest.raises(PolicyError):
            cache.load(path)
        path.write_text("routing:\n  fast_max_score: 2\n")
        assert cache.load(path).policy.routing.fast_max_score == 2
