"""corral.options.secrets: which env values are secret, and how they are masked."""

from __future__ import annotations

import time

import pytest

from corral.errors import OptionError
from corral.options.convert import convert_value
from corral.options.secrets import (
    MASK,
    KnownSecrets,
    is_secret,
    is_secret_name,
    mask,
    mask_data,
    mask_env,
    mask_text,
    mask_value,
    secret_values,
)

SECRET_NAMES = [
    "API_KEY",
    "STRIPE_KEY",
    "stripe_key",
    "AWS_SECRET_ACCESS_KEY",
    "CLIENT_SECRET",
    "clientSecret",
    "SECRET",
    "GITHUB_TOKEN",
    "NPMTOKEN",
    "TOKEN",
    "ACCESS_TOKEN_LIVE",
    "DB_PASSWORD",
    "MYSQLPASSWORD",
    "PASSWD",
    "SMTP_PASS",
    "MYSQL_PWD",
    "GPG_PASSPHRASE",
    "APIKEY",
    "my-api-key",
    "sentry.secret",
]
PLAIN_NAMES = [
    "PATH",
    "HOME",
    "PWD",
    "OLDPWD",
    "KEY",
    "KEYBOARD_LAYOUT",
    "MONKEY",
    "AWS_ACCESS_KEY_ID",
    "TOKENIZERS_PARALLELISM",
    "PASSPORT_NO",
    "BYPASS",
    "NODE_ENV",
    "DATABASE_URL",
    "SSH_PUBLIC_KEY",
    "client_public_key",  # corral.log names a refused TCP client by it
    "",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name):
    assert is_secret_name(name) and is_secret(name, "x")


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names(name):
    assert not is_secret_name(name) and not is_secret(name, "plain value")


@pytest.mark.parametrize(
    "value, shown",
    [
        ("postgres://u:pw@h/db", "postgres://u:****@h/db"),
        (
            "postgresql://user:p%40ss@db.example:5432/app",
            "postgresql://user:****@db.example:5432/app",
        ),
        ("redis://:p@ss@cache:6379/0", "redis://:****@cache:6379/0"),
        ("amqp://guest:guest@rabbit//", "amqp://guest:****@rabbit//"),
        ("mongodb://u:pw@h1,h2/db?replicaSet=r", "mongodb://u:****@h1,h2/db?replicaSet=r"),
        ("https://h/x?a=1&password=zz&b=2", "https://h/x?a=1&password=****&b=2"),
        ("Server=h;User Id=u;Password=x y;", "Server=h;User Id=u;Password=**** y;"),
        ("https://user@host/path", "https://user@host/path"),  # no password: nothing to hide
        ("https://host/a:b@c", "https://host/a:b@c"),  # an @ in the path is no userinfo
        ("plain", "plain"),
    ],
)
def test_url_passwords(value, shown):
    assert mask_value(value) == shown
    assert is_secret("ANY_NAME", value) == (shown != value)


def test_mask_env():
    env = {
        "API_TOKEN": "s3cr3t",
        "DATABASE_URL": "postgres://u:pw@h/db",
        "HOME": "/root",
        "EMPTY_PASSWORD": "",
        "UNSET_KEY": None,
    }
    assert mask_env(env) == {
        "API_TOKEN": MASK,
        "DATABASE_URL": "postgres://u:****@h/db",
        "HOME": "/root",
        "EMPTY_PASSWORD": "",  # nothing to hide, and it tells the variable is empty
        "UNSET_KEY": None,
    }
    assert env["API_TOKEN"] == "s3cr3t"  # a copy: the env itself is untouched
    assert mask("PORT", 8080) == 8080


@pytest.mark.parametrize(
    "text, shown",
    [
        ("but API_TOKEN='s3cr3t'", "but API_TOKEN='****'"),
        ('got {"API_KEY": "a\\"b", "HOME": "/r"}', 'got {"API_KEY": "****", "HOME": "/r"}'),
        ("got {'DB_PASSWORD': 'x', 'N': 'y'}", "got {'DB_PASSWORD': '****', 'N': 'y'}"),
        ("run --password=hunter2 --user=bob", "run --password=**** --user=bob"),
        ("SECRET=abc,NEXT=1", "SECRET=****,NEXT=1"),
        ("connect postgres://u:pw@h/db: refused", "connect postgres://u:****@h/db: refused"),
        ("log file /x/api_token.log: No space left", "log file /x/api_token.log: No space left"),
        ("unknown option 'api_key'", "unknown option 'api_key'"),
        ("PATH=/usr/bin", "PATH=/usr/bin"),
    ],
)
def test_mask_text(text, shown):
    assert mask_text(text) == shown


def test_known_values_are_masked_anywhere():
    assert mask_text("KeyError: 'hunter22' in x", ["hunter22"]) == "KeyError: '****' in x"
    assert mask_text("port 1 of 1", ["1"]) == "port 1 of 1"  # too short to search for


def test_mask_data_walks_records():
    record = {
        "event": "cannot restore app",
        "error": "increment_var 'API_TOKEN' must hold an integer, but API_TOKEN='abc'",
        "env": {"API_TOKEN": "abc", "URL": "postgres://u:pw@h/db", "N": "1"},
        "password": "x",
        "list": ["ok", "redis://:pw@h"],
        "pid": 12,
    }
    assert mask_data(record) == {
        "event": "cannot restore app",
        "error": "increment_var 'API_TOKEN' must hold an integer, but API_TOKEN='****'",
        "env": {"API_TOKEN": MASK, "URL": "postgres://u:****@h/db", "N": "1"},
        "password": MASK,
        "list": ["ok", "redis://:****@h"],
        "pid": 12,
    }


def test_known_secrets_follow_the_envs():
    envs = [{"API_KEY": "first-key", "URL": "redis://:urlpass@h"}]
    known = KnownSecrets(lambda: envs)
    assert known() == {"first-key", "urlpass"}
    envs[0] = {"API_KEY": "second-key"}  # an app restarted with --update-env
    assert known() == {"second-key"}
    envs.clear()
    assert known() == set()


def test_option_errors_mask_env_values():
    with pytest.raises(OptionError) as caught:
        convert_value("dict", "env", {"API_TOKEN": "s3cr3t\x00", "DSN": "pg://u:pw@h/d"})
    message = str(caught.value)
    assert "s3cr3t" not in message and ":pw@" not in message
    assert "'API_TOKEN': '****'" in message and "NUL" in message


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "a:" * 100_000,
        "a-" * 100_000,
        "a://b:" * 30_000,
        "a://b:c" + "@" * 100_000,
        "'a': " * 40_000,
        "password=" * 20_000,
        "API_KEY=" * 20_000,
        "x" * 100_000 + "://" + "y:" * 50_000,
    ],
)
def test_masking_is_linear_on_hostile_text(text):
    """Found by hypothesis (tests/faults/test_bad_input.py): a backtracking regex held
    the daemon for minutes on one odd env value."""
    began = time.perf_counter()
    mask_text(text, ["hunter22"])
    secret_values({"ANY": text, "API_KEY": text})
    mask_env({"URL": text})
    assert time.perf_counter() - began < 2.0


def test_known_secrets_read_the_envs_again_only_when_their_version_moves() -> None:
    """A log record of a daemon with 1,000 apps looked at every app's env: O(n^2) over a
    start. With a version (the daemon's: envs set, apps held), the values are kept."""
    envs = [{"API_TOKEN": "first-secret-value"}]
    version = [0]
    reads = []

    def listed() -> list[dict[str, str]]:
        reads.append(1)
        return envs

    known = KnownSecrets(listed, version=lambda: version[0])
    assert known() == {"first-secret-value"}
    assert known() == {"first-secret-value"} and len(reads) == 1
    envs.append({"DB_PASSWORD": "second-secret-value"})
    version[0] += 1  # an env set: read again
    assert known() == {"first-secret-value", "second-secret-value"} and len(reads) == 2


# -- names and values that PM2 apps hold tokens in (a tester found them in clear) -----

NEW_SECRET_NAMES = [
    "CREDENTIALS",
    "DB_CREDENTIALS",
    "CREDENTIAL",
    "SERVICE_CREDENTIALS_JSON",
    "dbCredentials",
    "GITHUB_PAT",
    "GH_PAT",
    "PAT_GITHUB",
    "AUTH",
    "BASIC_AUTH",
    "PROXY_AUTH",
    "http.auth",
    "PRIVATE_KEY",
    "JWT_PRIVATE_KEY_PEM",
    "PRIVATEKEY",
]
NEW_PLAIN_NAMES = [
    "AUTHOR",
    "AUTHOR_EMAIL",
    "AUTH_URL",
    "AUTH_MODE",
    "OAUTH_CLIENT_ID",
    "OAUTH_CALLBACK_URL",
    "ENABLE_AUTH",
    "DISABLE_AUTH",
    "USE_AUTH",
    "SKIP_AUTH",
    "PATH",
    "PAT",  # alone: too short a name to tell
    "PATCH_LEVEL",
    "SPATIAL",
    "PATTERN",
    "GOOGLE_APPLICATION_CREDENTIALS",  # the path of a key file, by Google's convention
    "AWS_SHARED_CREDENTIALS_FILE",
    "PRIVATE_KEY_PATH",
    "PRIVATE_REGISTRY",
    "CREDENTIALS_DIR",
    "GITHUB_PAT_FILE",
]


@pytest.mark.parametrize("name", NEW_SECRET_NAMES)
def test_credential_pat_auth_and_private_key_names_are_secret(name):
    assert is_secret_name(name) and is_secret(name, "x")
    assert mask_env({name: "x"}) == {name: MASK}


@pytest.mark.parametrize("name", NEW_PLAIN_NAMES)
def test_names_near_the_new_rules_stay_plain(name):
    assert not is_secret_name(name) and not is_secret(name, "plain value")
    assert mask_text(f"{name}=v1") == f"{name}=v1"


GH = "ghp_" + "a1B2c3D4e5" * 4  # 40 characters, as GitHub's
TOKENS = [
    GH,
    "gho_" + "Z9y8X7w6V5u4T3s2R1q0" * 2,
    "github_pat_11ABCDEFG0" + "x" * 40,
    "xoxb-1234567890-abcdefghij",
    "xoxp-1234567890-1234567890-abcdef",
    "sk-" + "a1" * 12,
    "sk-proj-" + "Ab3" * 10,
    "AKIAIOSFODNN7EXAMPLE",
    "glpat-" + "x1y2z3" * 4,
]


@pytest.mark.parametrize("token", TOKENS)
def test_a_known_token_is_secret_whatever_its_name(token):
    assert is_secret("SETTING", token)
    assert mask("SETTING", token) == MASK
    assert mask_env({"SETTING": token}) == {"SETTING": MASK}
    assert mask_text(f"cannot clone with {token}: denied") == "cannot clone with ****: denied"
    assert token in secret_values({"SETTING": token})


@pytest.mark.parametrize(
    "value, shown",
    [
        ("Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc123", "Bearer ****"),
        ("bearer 0123456789abcdef0123", "bearer ****"),
        ("Basic dXNlcjpodW50ZXIy", "Basic ****"),  # user:hunter2
        ("Authorization: Bearer 0123456789abcdefXYZ", "Authorization: Bearer ****"),
    ],
)
def test_a_bearer_or_basic_credential_is_secret_whatever_its_name(value, shown):
    assert is_secret("HEADER", value)
    assert mask("HEADER", value) == shown
    assert mask_text(f"sent {value}") == f"sent {shown}"


@pytest.mark.parametrize(
    "value",
    [
        "Basic settings",  # no base64 of user:password
        "Basic plan",
        "Bearer of bad news",
        "Bearer token",
        "task-0123456789abcdefghij",  # sk- inside a word
        "disk-sk-abcdefghijklmnopqrstuvwxyz",  # no digit: a name, not a key
        "sk-learn-extras-and-more-words",
        "ghp_short",
        "AKIA",
        "AKIAIOSFODNN7EXAMPLEX",  # 17 after AKIA: not an access key id
        "xoxb-",
        "https://github.com/org/repo",
        "/srv/app/keys/github_pat.txt",
    ],
)
def test_values_near_the_token_rules_stay_plain(value):
    assert not is_secret("SETTING", value)
    assert mask("SETTING", value) == value
    assert mask_text(value) == value


@pytest.mark.parametrize(
    "text",
    [
        "ghp_" * 50_000,
        "sk-" * 70_000,
        "sk-a" + "1" * 200_000,
        "Bearer " * 30_000,
        "Basic a" * 30_000,
        "Basic " + "QUJD" * 50_000,
    ],
)
def test_token_masking_is_linear_on_hostile_text(text):
    began = time.perf_counter()
    mask_text(text)
    secret_values({"ANY": text})
    assert time.perf_counter() - began < 2.0
