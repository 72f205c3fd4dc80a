"""Signals from change-set facts: path classes, content detectors on changed lines, file modes."""

from __future__ import annotations

import pytest

from route_agent.policy import PolicyCache
from route_agent.policy.loader import merge_layers, parse_layer, validate
from route_agent.signals import ChangedFile, ChangeSet, PathMatcher, compute_signals
from route_agent.signals import TestFailures as Failures
from route_agent.signals.compute import Evidence
from route_agent.signals.detectors import find_secrets
from route_agent.signals.paths import skeleton

POLICY = PolicyCache().load().policy
MATCHER = PathMatcher(POLICY)


def modified(path: str, *added: str, removed: tuple[str, ...] = (), start: int = 10) -> ChangedFile:
    return ChangedFile(
        path, "modified",
        added=tuple((start + i, text) for i, text in enumerate(added)),
        removed=tuple((start + i, text) for i, text in enumerate(removed)),
        old_mode="100644", new_mode="100644",
    )


def signals_for(*files: ChangedFile, brief: str = "fix it", matcher: PathMatcher = MATCHER,
                failures: Failures | None = None):
    return compute_signals(ChangeSet(files=files), brief, matcher, failures)


def evidence_of(files: tuple[ChangedFile, ...], name: str) -> tuple[Evidence, ...]:
    raised = signals_for(*files).raised
    assert name in raised, sorted(raised)
    return raised[name].evidence


SCHEMA_CONTENT = [
    pytest.param("app/db.py", 'cursor.execute("ALTER TABLE users ADD COLUMN age int")', "SQL DDL", id="sql-ddl-in-python"),
    pytest.param("app/db.py", 'conn.execute("create unique index ix_email on users(email)")', "SQL DDL", id="create-index"),
    pytest.param("app/db.py", 'sql = "DROP TABLE sessions"', "SQL DDL", id="drop-table"),
    pytest.param("app/store.py", "        migrations.AddField(model_name='user', name='age'),", "Django migration operation",
                 id="django-migration-op"),
    pytest.param("app/upgrade.py", "    op.add_column('users', sa.Column('age', sa.Integer()))", "Alembic operation",
                 id="alembic-op"),
    pytest.param("app/models.py", "    age = models.IntegerField(default=0)", "ORM model field", id="django-field"),
    pytest.param("app/models.py", "    owner = models.ForeignKey(User, on_delete=models.CASCADE)", "ORM model field",
                 id="django-fk"),
    pytest.param("app/tables.py", "    age: Mapped[int] = mapped_column(default=0)", "ORM model field", id="sqlalchemy-mapped"),
    pytest.param("app/tables.py", "    age = Column(Integer, nullable=False)", "ORM model field", id="sqlalchemy-column"),
    pytest.param("db/app.rb", "    add_column :users, :age, :integer", "Rails migration", id="rails"),
    pytest.param("api/user.proto", "message User {", "protobuf message", id="proto"),
    pytest.param("api/schema.graphql", "type User {", "GraphQL type", id="graphql"),
    pytest.param("api/spec.yaml", "openapi: 3.1.0", "OpenAPI schema", id="openapi"),
    pytest.param("prisma/app.prisma", "model User {", "Prisma model", id="prisma"),
]


@pytest.mark.parametrize(("path", "line", "rule"), SCHEMA_CONTENT)
def test_schema_detectors_on_changed_lines(path: str, line: str, rule: str) -> None:
    changed = modified(path, line, start=42)
    ev = [e for e in evidence_of((changed,), "schema_change") if e.line is not None and e.detail == rule]
    assert ev, f"no {rule} evidence"
    assert (ev[0].path, ev[0].line) == (path, 42)


@pytest.mark.parametrize(("path", "line", "rule"), SCHEMA_CONTENT[:6])
def test_schema_detectors_see_removed_lines(path: str, line: str, rule: str) -> None:
    changed = modified(path, removed=(line,), start=7)
    assert signals_for(changed).has_schema_change


AUTH_CONTENT = [
    pytest.param("services/identity/tokens.py", "    claims = jwt.decode(token, key, algorithms=['RS256'])", "JWT handling",
                 id="jwt-decode"),
    pytest.param("services/identity/tokens.py", "def verify_access_token(raw: str) -> Claims:", "token verification",
                 id="verify-token"),
    pytest.param("app/api.py", "    refresh_token = issue(user)", "token verification", id="refresh-token"),
    pytest.param("app/users.py", "    if not check_password(user, supplied):", "password handling", id="password"),
    pytest.param("app/users.py", "    digest = bcrypt.hashpw(pw, salt)", "password handling", id="bcrypt"),
    pytest.param("app/views.py", "    request.session['uid'] = user.id", "session handling", id="session"),
    pytest.param("app/views.py", "@login_required", "session handling", id="login-required"),
    pytest.param("app/views.py", "    if not user.has_perm('billing.refund'):", "permission check", id="has-perm"),
    pytest.param("app/views.py", "    if request.user.is_superuser:", "permission check", id="superuser"),
    pytest.param("app/sso_client.py", "    flow = OAuth2Session(client_id, scope=scopes)", "OAuth / OIDC", id="oauth"),
    pytest.param("app/sign.py", "    return hmac.compare_digest(expected, given)", "cryptography", id="hmac"),
    pytest.param("app/sign.py", "    f = Fernet(key)", "cryptography", id="fernet"),
]


@pytest.mark.parametrize(("path", "line", "rule"), AUTH_CONTENT)
def test_auth_detectors_on_changed_lines(path: str, line: str, rule: str) -> None:
    changed = modified(path, line, start=17)
    ev = [e for e in evidence_of((changed,), "auth_code") if e.line is not None and e.detail == rule]
    assert ev, f"no {rule} evidence"
    assert (ev[0].path, ev[0].line) == (path, 17)
    assert ev[0].excerpt


def test_jwt_code_in_an_unnamed_directory_is_auth() -> None:
    # services/identity/ matches no path rule: the content alone makes it auth code.
    changed = modified("services/identity/tokens.py", "    jwt.decode(token, PUBLIC_KEY, algorithms=['RS256'])")
    assert not MATCHER.classify("services/identity/tokens.py")
    assert signals_for(changed).has_auth_code


SECRETS = [
    pytest.param("AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'", "AWS access key id", id="aws-key-id"),
    pytest.param("-----BEGIN RSA PRIVATE KEY-----", "private key", id="private-key"),
    pytest.param("token = 'ghp_" + "a1B2" * 9 + "'", "GitHub token", id="github-token"),
    pytest.param("GITLAB = 'glpat-" + "x" * 20 + "'", "GitLab token", id="gitlab-token"),
    pytest.param("slack = 'xoxb-1234567890-abcdef'", "Slack token", id="slack"),
    pytest.param("stripe = 'sk_live_" + "9" * 24 + "'", "Stripe key", id="stripe"),
    pytest.param("key = 'AIza" + "B" * 35 + "'", "Google API key", id="google"),
    pytest.param("api_key = 'q8Zr2LmX9vTe4Kd1'", "generic secret assignment", id="generic-assignment"),
]


@pytest.mark.parametrize(("line", "rule"), SECRETS)
def test_secrets_in_added_lines_are_flagged_and_withheld(line: str, rule: str) -> None:
    changed = modified("app/settings.py", line, start=3)
    ev = evidence_of((changed,), "secret_in_content")
    assert ev[0].path == "app/settings.py" and ev[0].line == 3
    assert ev[0].detail is not None and rule in ev[0].detail and "withheld" in ev[0].detail
    assert ev[0].excerpt is None  # the value never reaches output
    assert [h.rule for h in find_secrets("x\n" + line)][:1] == [rule]


def test_a_removed_secret_is_not_a_secret_hit() -> None:
    changed = modified("app/settings.py", "api_key = os.environ['API_KEY']", removed=("api_key = 'q8Zr2LmX9vTe4Kd1'",))
    assert "secret_in_content" not in signals_for(changed).raised


@pytest.mark.parametrize(
    ("path", "line"),
    [
        pytest.param("ops/web.yaml", "kind: Deployment", id="deployment"),
        pytest.param("ops/web.yml", "kind: Ingress", id="ingress"),
        pytest.param("ops/jobs.yaml", "  kind: CronJob", id="cronjob"),
    ],
)
def test_k8s_manifests_by_content(path: str, line: str) -> None:
    ev = evidence_of((modified(path, line, start=5),), "deploy_config")
    assert any(e.line == 5 and e.detail == "Kubernetes manifest" for e in ev)


def test_kind_in_python_is_not_a_manifest() -> None:
    assert "deploy_config" not in signals_for(modified("app/x.py", "kind: Deployment")).raised


PATH_CASES = [
    pytest.param("migrations/0042_add_age.py", "schema_change", id="migrations-dir"),
    pytest.param("app/migrations/0001_initial.py", "schema_change", id="nested-migrations"),
    pytest.param("alembic/versions/abc_add.py", "schema_change", id="alembic-versions"),
    pytest.param("db/queries.sql", "schema_change", id="sql-file"),
    pytest.param("api/user.proto", "schema_change", id="proto-file"),
    pytest.param("api/schema.graphql", "schema_change", id="graphql-file"),
    pytest.param("openapi.yaml", "schema_change", id="openapi-file"),
    pytest.param("app/auth/views.py", "auth_code", id="auth-dir"),
    pytest.param("lib/jwt_utils.py", "auth_code", id="jwt-name"),
    pytest.param("app/login.py", "auth_code", id="login"),
    pytest.param(".env", "secrets_handling", id="dotenv"),
    pytest.param("config/.env.production", "secrets_handling", id="dotenv-prod"),
    pytest.param("certs/server.pem", "secrets_handling", id="pem"),
    pytest.param("deploy/id_rsa", "secrets_handling", id="id-rsa"),
    pytest.param("app/secret_store.py", "secrets_handling", id="secret-name"),
    pytest.param(".github/workflows/ci.yml", "ci_config", id="gh-workflows"),
    pytest.param(".gitlab-ci.yml", "ci_config", id="gitlab"),
    pytest.param("Jenkinsfile", "ci_config", id="jenkins"),
    pytest.param("Dockerfile", "deploy_config", id="dockerfile"),
    pytest.param("services/api/Dockerfile", "deploy_config", id="nested-dockerfile"),
    pytest.param("docker-compose.prod.yml", "deploy_config", id="compose"),
    pytest.param("k8s/web-deployment.yaml", "deploy_config", id="k8s-dir"),
    pytest.param("deploy/web.yaml", "deploy_config", id="deploy-dir"),
    pytest.param("infra/main.tf", "deploy_config", id="terraform"),
    pytest.param("charts/web/values.yaml", "deploy_config", id="helm"),
    pytest.param("requirements.txt", "dependency_manifest", id="requirements"),
    pytest.param("web/package.json", "dependency_manifest", id="package-json"),
    pytest.param("go.sum", "dependency_manifest", id="go-sum"),
    pytest.param("docs/guide.md", "docs", id="docs"),
    pytest.param("tests/test_x.py", "tests", id="tests"),
    pytest.param("ui/__snapshots__/a.snap", "snapshots", id="snapshots"),
]


@pytest.mark.parametrize(("path", "path_class"), PATH_CASES)
def test_path_classes(path: str, path_class: str) -> None:
    assert path_class in {m.path_class for m in MATCHER.classify(path)}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(".env.example", id="env-example"),
        pytest.param("src/app/main.py", id="plain-code"),
        pytest.param("authors.txt", id="authors-not-auth"),
        pytest.param("docs/migrations.md", id="doc-about-migrations"),
        pytest.param("a/workflows/ci.yml", id="workflows-elsewhere"),
    ],
)
def test_paths_that_are_not_protected(path: str) -> None:
    classes = {m.path_class for m in MATCHER.classify(path)}
    assert not classes & {"schema_change", "auth_code", "secrets_handling", "ci_config", "deploy_config"}


def test_glob_star_does_not_cross_directories() -> None:
    policy = validate(merge_layers([
        parse_layer("models:\n  fast: {provider: openai, model: a}\n  strong: {provider: openai, model: b}\n", "a"),
        parse_layer("paths:\n  sensitive: ['billing/*.py']\n", "b"),
    ]), "b")
    matcher = PathMatcher(policy)
    assert {m.path_class for m in matcher.classify("billing/refund.py")} == {"sensitive"}
    assert "sensitive" not in {m.path_class for m in matcher.classify("billing/sub/refund.py")}


@pytest.mark.parametrize(
    ("path", "imitated"),
    [
        pytest.param(".github/workflоws/ci.yml", "ci_config", id="cyrillic-o-in-workflows"),
        pytest.param(".github/wоrkflоws/deploy.yml", "ci_config", id="two-cyrillic-o"),
        pytest.param("migrаtions/0001.py", "schema_change", id="cyrillic-a-in-migrations"),
        pytest.param("Dоckerfile", "deploy_config", id="cyrillic-o-in-dockerfile"),
        pytest.param("ａｕｔｈ/views.py", "auth_code", id="fullwidth-auth"),
    ],
)
def test_lookalike_protected_paths(path: str, imitated: str) -> None:
    match = MATCHER.lookalike(path)
    assert match is not None and match.path_class == imitated
    sig = signals_for(ChangedFile(path, "untracked", added=((1, "x: 1"),), new_mode="100644"))
    assert "lookalike_path" in sig.raised
    assert sig.raised["lookalike_path"].evidence[0].path == path


@pytest.mark.parametrize("path", [pytest.param("docs/café.md", id="accented"), pytest.param("src/データ.py", id="cjk")])
def test_non_ascii_paths_that_imitate_nothing(path: str) -> None:
    assert MATCHER.lookalike(path) is None


def test_skeleton_maps_confusables() -> None:
    assert skeleton(".github/workflоws/CI.yml") == ".github/workflows/ci.yml"


@pytest.mark.parametrize(
    ("changed", "detail_fragment"),
    [
        pytest.param(ChangedFile("bin/run", "untracked", new_mode="120000"), "120000", id="symlink-added"),
        pytest.param(ChangedFile("lib", "typechange", old_mode="100644", new_mode="120000"), "120000", id="file-to-symlink"),
        pytest.param(ChangedFile("scripts/deploy.sh", "modified", old_mode="100644", new_mode="100755"), "100755",
                     id="exec-bit-set"),
        pytest.param(ChangedFile("scripts/deploy.sh", "modified", old_mode="100755", new_mode="100644"), "100644",
                     id="exec-bit-cleared"),
        pytest.param(ChangedFile("tools/new.sh", "untracked", added=((1, "echo hi"),), new_mode="100755"), "100755",
                     id="new-executable"),
        pytest.param(ChangedFile("vendor/lib", "modified", old_mode="160000", new_mode="160000"), "gitlink", id="submodule"),
    ],
)
def test_file_modes(changed: ChangedFile, detail_fragment: str) -> None:
    ev = evidence_of((changed,), "file_mode_change")
    assert ev[0].path == changed.path
    assert ev[0].detail is not None and detail_fragment in ev[0].detail


def test_unchanged_mode_is_not_a_mode_change() -> None:
    assert "file_mode_change" not in signals_for(modified("a.py", "x = 1")).raised


def test_deletions_binaries_dependencies_and_truncation() -> None:
    files = (
        ChangedFile("app/old.py", "deleted", removed=((1, "x = 1"), (2, "y = 2")), old_mode="100644"),
        ChangedFile("static/logo.png", "modified", binary=True, old_mode="100644", new_mode="100644"),
        modified("requirements.txt", "httpx==0.28.1"),
        ChangedFile("data/big.py", "untracked", added=((1, "x = 1"),), new_mode="100644", truncated=True),
    )
    raised = signals_for(*files).raised
    assert raised["deletions"].evidence[0].path == "app/old.py"
    assert raised["binary_change"].evidence[0].path == "static/logo.png"
    assert raised["dependency_change"].evidence[0].path == "requirements.txt"
    assert raised["truncated_input"].evidence[0].path == "data/big.py"


def test_binary_content_is_not_scanned() -> None:
    changed = ChangedFile("blob.py", "modified", added=((1, "password = 'hunter2hunter2'"),), binary=True)
    raised = signals_for(changed).raised
    assert "auth_code" not in raised and "secret_in_content" not in raised


def test_rename_out_of_a_protected_path_counts() -> None:
    changed = ChangedFile("archive/0001.py", "renamed", old_path="migrations/0001.py", old_mode="100644", new_mode="100644")
    assert signals_for(changed).has_schema_change


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        pytest.param(modified("app/sync.py", "def drain(queue):"), True, id="new-function"),
        pytest.param(modified("app/sync.py", "class RetryBudget:"), True, id="new-class"),
        pytest.param(modified("web/app.ts", "export function retry() {"), True, id="ts-export-function"),
        pytest.param(ChangedFile("app/new_mod.py", "untracked", added=((1, "X = 1"),), new_mode="100644"), True,
                     id="new-code-file"),
        pytest.param(modified("app/sync.py", "    return x + 2"), False, id="edit-only"),
        pytest.param(modified("docs/guide.md", "def example():"), False, id="docs-are-not-code"),
        pytest.param(ChangedFile("notes.txt", "untracked", added=((1, "class A:"),)), False, id="new-text-file"),
    ],
)
def test_new_code_from_the_diff(changed: ChangedFile, expected: bool) -> None:
    assert signals_for(changed, brief="fix it").needs_new_code is expected


def test_design_notes_example_signals() -> None:
    files = tuple(modified(f"app/m{i}.py", "    return x + 2", removed=("    return x + 1",)) for i in range(4))
    failures = Failures(count=2, source="junit.xml", evidence=(Evidence(path="tests/test_a.py", line=4),))
    sig = signals_for(*files, brief="add a retry budget function to the sync worker", failures=failures)
    assert sig.summary_line() == "files=4 schema_change=false auth_code=false test_failures=2 new_code=true"
    assert sig.as_dict()["test_failures"] == 2
    assert sig.raised["test_failures"].evidence[0].line == 4


def test_readme_typo_raises_nothing_but_files() -> None:
    sig = signals_for(modified("README.md", "Install the tool.", removed=("Instal the tool.",)), brief="fix a typo")
    assert sig.raised == {}
    assert sig.files_touched == 1


def test_content_in_unchanged_lines_is_not_seen() -> None:
    # Only changed lines reach the detectors: context (e.g. an existing password check) does not.
    changed = modified("app/users.py", "    logger.info('done')")
    sig = signals_for(changed)
    assert not sig.has_auth_code and not sig.has_schema_change


def test_evidence_is_capped() -> None:
    files = tuple(modified(f"migrations/{i:04}.py", "x = 1") for i in range(50))
    sig = signals_for(*files)
    assert sig.raised["schema_change"].count == 50
    assert len(sig.raised["schema_change"].evidence) == 20


def test_custom_rule_signal() -> None:
    policy = validate(merge_layers([
        PolicyCache().default_layer(),
        parse_layer("custom_rules:\n  - {name: billing, globs: ['billing/'], points: 4, always_strong: true}\n", "t.yaml"),
    ]), "t.yaml")
    sig = signals_for(modified("billing/refund.py", "x = 1"), matcher=PathMatcher(policy))
    assert "custom:billing" in sig.raised


def test_long_lines_are_capped_before_matching() -> None:
    line = "x" * 10_000 + " jwt.decode(token)"
    assert not signals_for(modified("app/x.py", line)).has_auth_code


POLICY_WITH_PATH_RULES = (
    "# route-agent policy for this repository (layered over the default)",
    "paths:",
    "  auth_code:",
    '    - "services/identity/**"',
    "  schema_change:",
    '    - "db/**"',
    "openapi: 3.1.0",
)


@pytest.mark.parametrize("path", [pytest.param(".route-agent/policy.yaml", id="repo-policy"),
                                  pytest.param(".route-agent.yaml", id="top-level-policy")])
def test_route_agents_own_policy_is_never_schema_or_auth(path: str) -> None:
    own = ChangedFile(path, "untracked", added=tuple(enumerate(POLICY_WITH_PATH_RULES, start=1)), new_mode="100644")
    signals = signals_for(own)
    assert (signals.has_schema_change, signals.has_auth_code) == (False, False)
    assert signals.files_touched == 1
    # The same lines anywhere else are a schema change (OpenAPI).
    elsewhere = ChangedFile("api/spec.yaml", "untracked", added=own.added, new_mode="100644")
    assert signals_for(elsewhere).has_schema_change


def test_a_secret_in_route_agents_own_files_still_counts() -> None:
    own = modified(".route-agent/policy.yaml", "api_key: 'AKIAIOSFODNN7EXAMPLE'")
    assert "secret_in_content" in signals_for(own).raised


# Issue 16, item 3: signals that read real changes right (each class of mistake, on real-looking code).

@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        pytest.param(modified("app/fields.py", "    default_field = models.CharField()"), False, id="def-inside-default"),
        pytest.param(modified("app/ui.py", "    classes = ['btn', 'btn-primary']"), False, id="class-inside-classes"),
        pytest.param(modified("src/lib.rs", "    let fnord = 3;"), False, id="fn-inside-fnord"),
        pytest.param(modified("app/sync.py", "def drain(queue, limit=10):", removed=("def drain(queue):",)), False,
                     id="changed-signature"),
        pytest.param(modified("web/math.js", "export const add = (a, b) => a - b;", removed=("export const add = (a, b) => a + b;",)),
                     False, id="same-arrow-function-modified"),
        pytest.param(modified("web/math.js", "export const sub = (a, b) => a - b;"), True, id="new-arrow-function"),
        pytest.param(modified("pkg/server.go", "func (s *Server) Drain(ctx context.Context) error {"), True, id="go-method"),
        pytest.param(modified("src/lib.rs", "pub(crate) fn drain(q: &mut Queue) {"), True, id="rust-pub-crate-fn"),
        pytest.param(modified("app/sync.py", "    def drain(self):", removed=("def drain(self):",)), False, id="reindented-def"),
        pytest.param(ChangedFile("app/__init__.py", "untracked", added=((1, ""), (2, "   ")), new_mode="100644"), False,
                     id="blank-new-file"),
        pytest.param(ChangedFile("app/__init__.py", "added", added=(), new_mode="100644"), False, id="empty-new-file"),
    ],
)
def test_new_code_is_a_name_the_file_did_not_define(changed: ChangedFile, expected: bool) -> None:
    assert signals_for(changed, brief="fix it").needs_new_code is expected


@pytest.mark.parametrize(
    ("brief", "expected"),
    [
        pytest.param("Add docs for the new endpoint", False, id="add-docs-for"),
        pytest.param("Update the documentation for the throttling API", False, id="update-documentation"),
        pytest.param("Fix typos in the serializer docstrings", False, id="fix-typos"),
        pytest.param("Add a new endpoint for exports", True, id="new-endpoint"),
        pytest.param("implement retry support in the client", True, id="implement"),
    ],
)
def test_a_docs_brief_does_not_ask_for_new_code(brief: str, expected: bool) -> None:
    assert signals_for(modified("README.md", "More words."), brief=brief).needs_new_code is expected


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("tests/models.py", "    name = models.CharField(max_length=100)"), id="model-in-test-file"),
        pytest.param(modified("tests/test_fields.py", "    age = models.IntegerField(default=0)"), id="model-in-test-module"),
        pytest.param(modified("app/models.py", "    # age = models.IntegerField(default=0)"), id="commented-out-field"),
        pytest.param(modified("app/models.py", "        age = models.IntegerField(default=0)",
                              removed=("    age = models.IntegerField(default=0)",)), id="reindented-field"),
        pytest.param(modified("docs/api-guide/schemas.md", "    CREATE TABLE users (id int);"), id="ddl-in-docs"),
        pytest.param(modified("tests/migrations/0001_initial.py", "        migrations.AddField(model_name='a', name='b'),"),
                     id="migration-fixture-in-tests"),
    ],
)
def test_what_is_not_a_schema_change(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_schema_change


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("rest_framework/authtoken/south_migrations/0001_initial.py", id="south-migrations"),
        pytest.param("app/alembic/versions/3f2a_add_age.py", id="nested-alembic-versions"),
        pytest.param("db/migrate/20240101_add_age.rb", id="rails-db-migrate"),
        pytest.param("backend/db/schema.rb", id="nested-schema-rb"),
    ],
)
def test_migration_folders_not_named_migrations(path: str) -> None:
    assert signals_for(modified(path, "x = 1")).has_schema_change


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("docs/topics/security.md", "Signing provides message integrity and a signature."),
                     id="prose-in-docs"),
        pytest.param(modified("README.rst", "Supports token authentication and permissions."), id="prose-in-readme"),
        pytest.param(modified("rest_framework/views.py", "        patch_vary_headers(response, ['Authenticate'])"),
                     id="vary-authenticate"),
        pytest.param(modified("rest_framework/response.py", "            response['Vary'] = 'Authenticate'"),
                     id="vary-header-item"),
        pytest.param(modified("app/migrations_helpers.py", "        ('auth', '0008_alter_user_password_max_length'),"),
                     id="migration-dependency-name"),
        pytest.param(modified("rest_framework/schemas/inspectors.py", "        sig = inspect.signature(view.get)"),
                     id="inspect-signature"),
        pytest.param(modified("app/views.py", "    # check the password before saving"), id="commented-out"),
        pytest.param(modified("tests/test_authentication.py", "        self.csrf_client.login(username='u', password='p')"),
                     id="auth-test"),
    ],
)
def test_what_is_not_auth_code(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_auth_code


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("rest_framework/authentication.py", id="authentication-py"),
        pytest.param("rest_framework/permissions.py", id="permissions-py"),
        pytest.param("rest_framework/authtoken/views.py", id="authtoken-views"),
        pytest.param("rest_framework/authtoken/models.py", id="authtoken-models"),
        pytest.param("django/middleware/csrf.py", id="csrf"),
    ],
)
def test_auth_files_by_name(path: str) -> None:
    assert signals_for(modified(path, "    x = 1")).has_auth_code


def test_a_word_in_the_brief_alone_does_not_force_strong() -> None:
    from route_agent.routing.decide import Router

    router = Router(POLICY)
    readme = ChangeSet(files=(modified("README.md", "More words."),))
    decision = router.classify(readme, "Fix the password reset wording in the README")
    assert "auth_code" in decision.signals.raised and not decision.signals.has_auth_code
    assert "auth_code" not in {h.condition for h in decision.always_strong}
    real = ChangeSet(files=(modified("app/users.py", "    if not check_password(user, supplied):"),))
    assert "auth_code" in {h.condition for h in router.classify(real, "Fix the password check").always_strong}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("tox.ini", id="tox"),
        pytest.param("noxfile.py", id="nox"),
        pytest.param("Jenkinsfile", id="jenkins"),
        pytest.param(".gitlab-ci.yml", id="gitlab"),
        pytest.param("azure-pipelines.yml", id="azure"),
        pytest.param(".circleci/config.yml", id="circleci"),
        pytest.param("appveyor.yml", id="appveyor"),
    ],
)
def test_ci_files(path: str) -> None:
    assert "ci_config" in signals_for(modified(path, "x = 1")).raised


def test_makefile_targets_run_by_ci() -> None:
    assert "ci_config" in signals_for(modified("Makefile", "\tpython -m pytest -q tests")).raised
    assert "ci_config" in signals_for(modified("Makefile", "lint:")).raised
    assert "ci_config" not in signals_for(modified("Makefile", "\tpython -m build --wheel")).raised


def test_a_rename_counts_as_one_file() -> None:
    body = ((1, "def drain(queue):"), (2, "    return queue.pop()"))
    files = (ChangedFile("app/old_sync.py", "deleted", removed=body, old_mode="100644"),
             ChangedFile("app/sync.py", "added", added=body, new_mode="100644"),
             modified("app/main.py", "from app.sync import drain", removed=("from app.old_sync import drain",)))
    sig = signals_for(*files)
    assert sig.files_touched == 2
    assert not sig.needs_new_code and "deletions" not in sig.raised
    renamed = ChangedFile("app/sync.py", "renamed", old_path="app/old_sync.py", old_mode="100644", new_mode="100644")
    assert signals_for(renamed).files_touched == 1


def test_floor_still_forces_strong_when_real() -> None:
    from route_agent.routing.decide import Router

    router = Router(POLICY)
    cases = {
        "schema_change": modified("app/models.py", "    age = models.IntegerField(default=0)"),
        "auth_code": modified("rest_framework/authentication.py", "        token = self.get_token(request)"),
        "ci_config": modified("tox.ini", "commands = pytest"),
        "deploy_config": modified("Dockerfile", "FROM python:3.12"),
        "secrets_handling": modified(".env", "DEBUG=1"),
    }
    for condition, changed in cases.items():
        decision = router.classify(ChangeSet(files=(changed,)), "fix it")
        assert decision.lane == "strong" and condition in {h.condition for h in decision.always_strong}, condition


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("rest_framework/utils/field_mapping.py", "    if isinstance(model_field, models.DecimalField):"),
                     id="isinstance-of-a-model-field"),
        pytest.param(modified("rest_framework/authtoken/serializers.py", "    username = serializers.CharField()"),
                     id="serializer-field"),
    ],
)
def test_reading_a_model_is_not_a_schema_change(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_schema_change


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("rest_framework/views.py", "        Instantiates and returns the list of authenticators that this view can use."),
                     id="docstring-prose"),
        pytest.param(modified("tox.ini", "    django-oauth-plus==2.2.1"), id="oauth-pin-in-tox"),
        pytest.param(modified("docs_theme/css/bootstrap.css", 'input[type="password"],'), id="css-password-input"),
    ],
)
def test_words_outside_auth_code_are_not_auth(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_auth_code


def test_reordering_authentication_and_permission_checks_is_auth() -> None:
    changed = modified("rest_framework/views.py", "        self.check_permissions(request)", "        self.perform_authentication(request)",
                       removed=("        self.perform_authentication(request)", "        self.check_permissions(request)"))
    assert signals_for(changed).has_auth_code


@pytest.mark.parametrize("path", ["djangorestframework/tokenauth/models.py", "app/authtoken_views.py"])
def test_token_models_and_views_by_path(path: str) -> None:
    assert signals_for(modified(path, "        return super().save(*args, **kwargs)")).has_auth_code


def test_a_line_added_at_the_top_of_a_file_is_not_a_new_file() -> None:
    from route_agent.signals.diffparse import change_set_from_diff

    diff = ("diff --git a/app/filters.py b/app/filters.py\nindex 1111111..2222222 100644\n--- a/app/filters.py\n"
            "+++ b/app/filters.py\n@@ -0,0 +1 @@\n+from __future__ import annotations\n")
    changed = change_set_from_diff(diff).files[0]
    assert changed.status == "modified"
    assert not signals_for(changed).needs_new_code
    new = ("diff --git a/app/new.py b/app/new.py\nnew file mode 100644\nindex 0000000..2222222\n--- /dev/null\n"
           "+++ b/app/new.py\n@@ -0,0 +1 @@\n+X = 1\n")
    assert change_set_from_diff(new).files[0].status == "added"


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("oauth2_provider/models.py", "    grant_type = models.IntegerField(choices=GRANT_TYPES)",
                              removed=("    grant_type =models.IntegerField(choices=GRANT_TYPES)",)), id="spacing-inside-the-line"),
        pytest.param(modified("oauth2_provider/models.py", "    expires = models.DateTimeField()",
                              removed=("    expires = models.DateTimeField()  # TODO provide a default",)), id="comment-dropped"),
        pytest.param(modified("app/models.py", "    b = models.IntegerField()", "    a = models.IntegerField()",
                              removed=("    a = models.IntegerField()", "    b = models.IntegerField()")), id="fields-reordered"),
    ],
)
def test_a_field_that_keeps_its_meaning_is_not_a_schema_change(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_schema_change


def test_a_model_made_swappable_is_a_schema_change() -> None:
    changed = modified("oauth2_provider/models.py", "class AbstractRefreshToken(models.Model):",
                       '        swappable = "OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL"', removed=("class RefreshToken(models.Model):",))
    assert signals_for(changed).has_schema_change


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(modified("setup.py", "        'oauthlib==0.6.0',"), id="requirement-pin"),
        pytest.param(modified("setup.py", '    description="OAuth2 goodies for the Djangonauts",'), id="package-description"),
        pytest.param(modified("oauth2_provider/templates/oauth2_provider/application_detail.html", "<h3>{{ app.name }}</h3>"),
                     id="template-in-an-oauth-package"),
    ],
)
def test_names_and_templates_are_not_auth_code(changed: ChangedFile) -> None:
    assert not signals_for(changed).has_auth_code


def test_code_in_an_oauth_package_is_auth() -> None:
    assert signals_for(modified("oauth2_provider/views/base.py", "        return self.get_redirect(request)")).has_auth_code


def test_sql_on_its_own_line_in_a_string_is_still_schema() -> None:
    changed = modified("app/db.py", 'SQL = """', "    ALTER TABLE users ADD COLUMN age int", '"""')
    assert signals_for(changed).has_schema_change


def test_a_rename_with_a_new_name_and_small_edits_counts_as_one_file() -> None:
    old = tuple((i, f"line {i}") for i in range(1, 11))
    new = (*old[:8], (9, "line nine"), (10, "line ten"))
    files = (ChangedFile("optionals.txt", "deleted", removed=old, old_mode="100644"),
             ChangedFile("requirements-test.txt", "added", added=new, new_mode="100644"),
             ChangedFile("app/unrelated.py", "added", added=((1, "X = 1"),), new_mode="100644"))
    assert signals_for(*files).files_touched == 2
