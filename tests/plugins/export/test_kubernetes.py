"""corral export kubernetes: manifests checked against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: an unknown field is refused) of three minor versions,
golden files for the shapes, a warning per option that does not map, bad input refused.

Regenerate the golden files with ``CORRAL_GOLDEN=1`` after a change that is meant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from corral import ConfigError, OptionError
from corral.api import load_plugins
from corral.plugins.export import export
from corral.plugins.export.kubernetes_cron import cron_schedule
from corral.plugins.export.kubernetes_names import kubernetes_name
from corral.plugins.export.kubernetes_probes import probe_action, probes
from tests.conftest import run_cli
from tests.core.test_corpus import CORPUS, FILES

kubernetes_validate = pytest.importorskip("kubernetes_validate")

# the oldest, a middle and the newest minor version kubernetes-validate 1.37 ships
VERSIONS = ("1.25", "1.31", "1.37")
ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden" / "kubernetes"
IMAGE = "registry.example.com/shop:1.2.3"


@pytest.fixture(scope="module")
def manager():
    """Every installed plugin: their options (health, cgroups, cron...) are what is mapped."""
    return load_plugins()


def write(tmp_path: Path, data: dict, name: str = "ecosystem.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def render(path: Path, manager, env_name: str | None = None, **params):
    params.setdefault("image", IMAGE)
    return export("kubernetes", path, env_name=env_name, params=params, manager=manager)


def documents(result) -> list[dict]:
    return [doc for text in result.files.values() for doc in yaml.safe_load_all(text)]


def by_kind(result, kind: str) -> list[dict]:
    return [doc for doc in documents(result) if doc["kind"] == kind]


def validate(result) -> int:
    """Each document against each version's strict schema; how many documents."""
    docs = documents(result)
    for doc in docs:
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(map(str, exc.absolute_path))
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} ({version}) {where}: {exc}")
    return len(docs)


def shown(result) -> str:
    """A result as one text: its warnings, then each file under its name."""
    lines = [f"# warning: {w}" for w in result.warnings]
    for name, text in result.files.items():
        lines += [f"# file: {name}", text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CORRAL_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with CORRAL_GOLDEN=1 to write it"
    assert text == path.read_text(), (
        f"{path} differs from the output: if the change is meant, run with CORRAL_GOLDEN=1 "
        "to regenerate it, and review the diff"
    )


# -- the schemas ------------------------------------------------------------------


def test_the_validator_is_strict():
    """A field no schema knows is refused: what the other tests rely on."""
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    for version in VERSIONS:
        kubernetes_validate.validate(config_map, version, strict=True)
        with pytest.raises(kubernetes_validate.ValidationError, match="bogus"):
            kubernetes_validate.validate({**config_map, "bogus": 1}, version, strict=True)


def corpus_files() -> list[Path]:
    return [CORPUS / name for name in FILES]


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_real_pm2_files_make_valid_manifests(path, manager):
    try:
        result = render(path, manager, include_secrets=True)
    except ConfigError as exc:  # a file corral refuses (bad option, no apps, needs a module)
        pytest.skip(f"refused: {str(exc).splitlines()[0]}")
    assert validate(result) >= len(result.files)


@pytest.mark.parametrize("include_secrets", [False, True])
@pytest.mark.parametrize("example", ["container.json", "ecosystem.json"])
def test_the_examples_make_valid_manifests(example, include_secrets, manager):
    result = render(ROOT / "examples" / example, manager, include_secrets=include_secrets)
    assert validate(result) >= len(result.files)


# -- the shapes (golden files) ----------------------------------------------------

CLUSTER_WEB = {
    "apps": [
        {
            "name": "web",
            "script": "server.js",
            "cwd": "/srv/web",
            "instances": 4,
            "exec_mode": "cluster",
            "listen": ":3000",
            "kill_timeout": 8000,
            "max_memory_restart": "300M",
            "memory_max": "512M",
            "cpu_max": "150%",
            "health": {
                "http": "http://127.0.0.1:${PORT}/healthz",
                "interval": "5s",
                "initial_delay": "2s",
                "success_threshold": 2,
            },
            "env": {"NODE_ENV": "development", "LOG_LEVEL": "info"},
            "env_production": {"NODE_ENV": "production"},
        }
    ]
}
CRON_JOB = {
    "apps": [
        {
            "name": "Nightly_Report",
            "script": "report.py",
            "args": ["--all"],
            "autorestart": False,
            "cron_restart": "0 0 3 * * *",
            "cron_tz": "Europe/Paris",
            "uid": "1000",
        }
    ]
}
SECRET_ENV = {
    "apps": [
        {
            "name": "api",
            "script": "api.py",
            "port": 8080,
            "wait_ready": True,
            "env": {
                "LOG_LEVEL": "info",
                "API_KEY": "k-123",
                "DATABASE_URL": "postgres://app:hunter2@db/app",
            },
        }
    ]
}


def test_golden_cluster_web_app(tmp_path, manager):
    """listen + health + memory and CPU limits, 4 instances, --env and --namespace."""
    path = write(tmp_path, CLUSTER_WEB)
    result = render(path, manager, env_name="production", namespace="shop")
    validate(result)
    check_golden("cluster-web.yaml", shown(result))
    (deployment,) = by_kind(result, "Deployment")
    assert deployment["spec"]["replicas"] == 4
    (pod,) = deployment["spec"]["template"]["spec"]["containers"]
    assert pod["args"] == [
        "/app/ecosystem.json",
        *("--only", "web", "--instances", "1", "--env", "production"),
    ]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 13
    assert pod["resources"]["limits"] == {"memory": "512Mi", "cpu": "1500m"}
    assert pod["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 3000}
    assert pod["readinessProbe"]["successThreshold"] == 2
    (env,) = by_kind(result, "ConfigMap")
    assert env["data"] == {"NODE_ENV": "production", "LOG_LEVEL": "info"}


def test_golden_cron_job(tmp_path, manager):
    """autorestart false + cron_restart: a CronJob (the seconds field 0 dropped)."""
    result = render(write(tmp_path, CRON_JOB), manager, config_path="/srv/jobs/apps.json")
    validate(result)
    check_golden("cron-job.yaml", shown(result))
    (cron,) = by_kind(result, "CronJob")
    assert cron["metadata"]["name"] == "nightly-report"
    assert (cron["spec"]["schedule"], cron["spec"]["timeZone"]) == ("0 3 * * *", "Europe/Paris")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsUser": 1000}
    assert pod["containers"][0]["workingDir"] == "/srv/jobs"


def test_golden_secret_env(tmp_path, manager):
    """Secret-looking values go to a Secret, written only with --include-secrets."""
    path = write(tmp_path, SECRET_ENV)
    result = render(path, manager, include_secrets=True)
    validate(result)
    check_golden("secret-env.yaml", shown(result))
    (secret,) = by_kind(result, "Secret")
    assert secret["stringData"] == {
        "API_KEY": "k-123",
        "DATABASE_URL": "postgres://app:hunter2@db/app",
    }


def test_golden_examples_container(manager):
    result = render(ROOT / "examples" / "container.json", manager)
    check_golden("examples-container.yaml", shown(result))


def test_golden_a_deploy_only_file_is_refused(tmp_path, manager):
    path = write(tmp_path, {"deploy": {"production": {"host": "h"}}})
    with pytest.raises(ConfigError) as refused:
        render(path, manager)
    check_golden("deploy-only.txt", str(refused.value).replace(str(tmp_path), "<tmp>") + "\n")


# -- what each option becomes -----------------------------------------------------


def test_secrets_are_referenced_not_written(tmp_path, manager):
    result = render(write(tmp_path, SECRET_ENV), manager)
    text = "".join(result.files.values())
    assert "hunter2" not in text and "k-123" not in text
    assert by_kind(result, "Secret") == []
    (warning,) = [w for w in result.warnings if "secret" in w]
    assert warning.startswith("api: env API_KEY, DATABASE_URL look secret: not written")
    assert "kubectl create secret generic api-secrets" in warning
    (container,) = by_kind(result, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert container["env"][0] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "api-secrets", "key": "API_KEY"}},
    }
    assert container["readinessProbe"]["exec"]["command"] == ["corral", "ready", "api"]


def test_a_one_shot_app_is_a_job_and_instances_max_is_one_replica(tmp_path, manager):
    data = {
        "apps": [
            {"name": "migrate", "script": "migrate.py", "autorestart": False},
            {"name": "web", "script": "web.js", "instances": "max"},
            {"name": "idle", "script": "idle.py", "autostart": False},
        ]
    }
    result = render(write(tmp_path, data), manager)
    validate(result)
    (job,) = by_kind(result, "Job")
    assert job["spec"]["backoffLimit"] == 0
    web, idle = by_kind(result, "Deployment")
    assert (web["spec"]["replicas"], idle["spec"]["replicas"]) == (1, 0)
    assert any(w.startswith("web: instances 0 or max (one per CPU)") for w in result.warnings)


def test_probes_map_each_kind_and_say_what_they_cannot(tmp_path, manager):
    data = {
        "apps": [
            {
                "name": "tcp",
                "script": "a.py",
                "health": [
                    {"tcp": 6379, "role": "liveness", "interval": 1500, "success_threshold": 2},
                    {"exec": "test -e /tmp/ok", "role": "readiness", "timeout": "2s"},
                ],
            },
            {
                "name": "unknown",
                "script": "b.py",
                "health": {"http": "http://127.0.0.1:${ADMIN_PORT}/ping"},
            },
        ]
    }
    result = render(write(tmp_path, data), manager)
    validate(result)
    tcp, unknown = (
        d["spec"]["template"]["spec"]["containers"][0] for d in by_kind(result, "Deployment")
    )
    assert tcp["livenessProbe"]["tcpSocket"] == {"port": 6379}
    assert tcp["livenessProbe"]["periodSeconds"] == 2  # 1.5 s, rounded up
    assert tcp["livenessProbe"]["successThreshold"] == 1
    assert tcp["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "test -e /tmp/ok"]
    assert "livenessProbe" not in unknown
    assert unknown["readinessProbe"]["exec"]["command"] == ["corral", "ready", "unknown"]
    notes = "\n".join(result.warnings)
    assert "tcp: health (liveness) tcp '127.0.0.1:6379': interval rounded up" in notes
    assert "success_threshold 2: a livenessProbe takes 1 only" in notes
    assert "unknown: health (both) http" in notes and "${ADMIN_PORT} is not known" in notes


def test_each_unmapped_option_is_one_warning_naming_the_app(tmp_path, manager):
    data = {
        "apps": [
            {
                "name": "busy",
                "script": "busy.py",
                "watch": True,
                "cron_restart": "0 * * * *",
                "depends_on": ["db"],
                "pids_max": 64,
                "uid": "www-data",
                "stop_exit_codes": [3],
                "listen": "unix:/run/busy.sock",
            },
            {"name": "db", "script": "db.py", "listen": "127.0.0.1:5432"},
        ]
    }
    result = render(write(tmp_path, data), manager)
    validate(result)
    for option in (
        "watch",
        "cron_restart",
        "depends_on",
        "pids_max",
        "uid",
        "stop_exit_codes",
        "listen",
    ):
        lines = [w for w in result.warnings if w.startswith(f"busy: {option} ")]
        assert len(lines) == 1, (option, result.warnings)
    assert "db: listen '127.0.0.1:5432' is loopback only" in "\n".join(result.warnings)
    assert all(w.startswith(("busy: ", "db: ")) for w in result.warnings)
    assert by_kind(result, "Service")[0]["metadata"]["name"] == "db"  # no Service for unix:


# -- bad input --------------------------------------------------------------------


def test_names_are_made_kubernetes_names():
    assert kubernetes_name("My_App.v2") == "my-app-v2"
    assert kubernetes_name("1ibrary") == "app-1ibrary"
    assert len(kubernetes_name("x" * 80)) == 52
    with pytest.raises(ConfigError, match=r"app '日本': its name has no letter or digit"):
        kubernetes_name("日本")


def test_an_app_name_with_nothing_to_keep_is_refused(tmp_path, manager):
    path = write(tmp_path, {"apps": [{"name": "__", "script": "a.py"}]})
    with pytest.raises(ConfigError, match=r"^app '__': its name has no letter or digit"):
        render(path, manager)


def test_two_apps_of_one_kubernetes_name_are_refused(tmp_path, manager):
    data = {"apps": [{"name": n, "script": "a.py"} for n in ("web_api", "Web-API")]}
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"apps 'web_api' and 'Web-API' both make .* 'web-api'"):
        render(path, manager)


def test_a_comma_in_a_name_is_refused(tmp_path, manager):
    """corral runtime --only takes a comma-separated list: 'a,b' would be two apps."""
    path = write(tmp_path, {"apps": [{"name": "a,b", "script": "a.py"}]})
    with pytest.raises(ConfigError, match=r"app 'a,b': a ',' in the name cannot be given"):
        render(path, manager)


def test_bad_params_are_refused(tmp_path, manager):
    path = write(tmp_path, {"apps": [{"name": "web", "script": "a.py"}]})
    with pytest.raises(OptionError, match="--image is required"):
        export("kubernetes", path, params={}, manager=manager)
    with pytest.raises(OptionError, match="--namespace 'Shop_1' is not a Kubernetes name"):
        render(path, manager, namespace="Shop_1")
    with pytest.raises(OptionError, match=r"--config-path 'apps\.json' must be absolute"):
        render(path, manager, config_path="apps.json")


def test_the_cli_writes_a_file_per_app_and_the_warnings(tmp_path):
    path = write(tmp_path, {"apps": [{"name": "web", "script": "a.py", "watch": True}]})
    missing = run_cli("export", "kubernetes", str(path), check=False)
    assert missing.returncode == 2 and "Missing option '--image'" in missing.stderr
    out = tmp_path / "k8s"
    done = run_cli("export", "kubernetes", str(path), "--image", IMAGE, "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["web.yaml"]
    assert "warning: web: watch has no Kubernetes equivalent" in done.stderr
    example = str(ROOT / "examples" / "container.json")
    printed = run_cli("export", "kubernetes", example, "--image", IMAGE)
    kinds = [doc["kind"] for doc in yaml.safe_load_all(printed.stdout)]
    assert kinds.count("Deployment") == 2 and kinds.count("CronJob") == 1


# -- reviewed bugs: one test each -------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "schedule"),
    [
        ("0 0 * * WED", "0 0 * * WED"),
        ("0 0 * JUL *", "0 0 * JUL *"),
        ("0 9 * jan,jul sun", "0 9 * jan,jul sun"),
        ("0 0 * * MON-FRI", "0 0 * * MON-FRI"),
        ("0 0 ? * SAT", "0 0 ? * SAT"),
        ("0 0 0 * * WED", "0 0 * * WED"),
        # Kubernetes' parser (robfig/cron) takes 0-6 for the days: croner's 7 (Sunday) is 0
        ("0 12 * * 0,6,7", "0 12 * * 0,6,0"),
        ("0 12 * * 5-7", "0 12 * * 5,6,0"),
    ],
)
def test_cron_names_make_a_cronjob_schedule(cron, schedule):
    assert cron_schedule(cron) == schedule


@pytest.mark.parametrize(
    "cron", ["0 0 L * *", "0 0 1,L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 * * L5", "0 0 * * 5L"]
)
def test_only_crons_l_w_and_hash_have_no_cronjob_schedule(cron):
    assert cron_schedule(cron) is None


def test_a_cron_with_a_day_name_is_a_cronjob_and_l_is_one_warning(tmp_path, manager):
    data = {
        "apps": [
            {"name": "wed", "script": "a.py", "autorestart": False, "cron_restart": "0 0 * * WED"},
            {"name": "jul", "script": "a.py", "autorestart": False, "cron_restart": "0 0 * JUL *"},
            {"name": "last", "script": "a.py", "autorestart": False, "cron_restart": "0 0 L * *"},
        ]
    }
    result = render(write(tmp_path, data), manager)
    validate(result)
    wed, jul = by_kind(result, "CronJob")
    assert (wed["spec"]["schedule"], jul["spec"]["schedule"]) == ("0 0 * * WED", "0 0 * JUL *")
    (job,) = by_kind(result, "Job")
    assert job["metadata"]["name"] == "last"
    (note,) = [w for w in result.warnings if "cron_restart" in w]
    assert note.startswith("last: cron_restart '0 0 L * *': L (the last day, or weekday,")
    assert "exported as a Job that runs once" in note


def test_a_croner_last_weekday_is_refused_naming_the_app_and_option(tmp_path, manager):
    """croner's 5L is not croniter's: refused as the file is read, naming both."""
    data = {"apps": [{"name": "j", "script": "a.py", "autorestart": False, "cron": "0 0 * * 5L"}]}
    with pytest.raises(ConfigError, match=r"\(j\): cron_restart: '0 0 \* \* 5L' is not a valid"):
        render(write(tmp_path, data), manager)


def test_an_https_check_is_an_https_probe_on_443(tmp_path, manager):
    """The health plugin takes http:// only (a file with https:// is refused, naming the
    app); a check handed to the exporter by an API caller is still probed over HTTPS."""
    assert probe_action("http", "https://127.0.0.1/healthz", {}) == (
        {"httpGet": {"path": "/healthz", "port": 443, "scheme": "HTTPS"}},
        "",
    )
    assert probe_action("http", "HTTPS://db.internal:8443/ready?x=1", {}) == (
        {"httpGet": {"host": "db.internal", "path": "/ready?x=1", "port": 8443, "scheme": "HTTPS"}},
        "",
    )
    assert probe_action("http", "http://127.0.0.1/", {}) == (
        {"httpGet": {"path": "/", "port": 80}},
        "",
    )
    data = {"apps": [{"name": "tls", "script": "a.py", "health": {"http": "https://h/x"}}]}
    with pytest.raises(ConfigError, match=r"\(tls\): health.http: must be an http:// URL"):
        render(write(tmp_path, data), manager)


def test_instances_below_zero_say_cpus_minus_n(tmp_path, manager):
    data = {"apps": [{"name": "w", "script": "a.py", "instances": -2}]}
    result = render(write(tmp_path, data), manager)
    (note,) = [w for w in result.warnings if "instances" in w]
    assert note.startswith("w: instances -2 (one per CPU but 2: CPUs - 2) has no Kubernetes")
    assert "max" not in note


def checked(*checks: dict) -> list[dict]:
    """Health checks as the health plugin completes them, one at a time (it refuses two
    of one role in a file: an API caller can still hand the exporter such a list)."""
    from corral.plugins.health.config import validate as health_checks

    return [health_checks(check)[0] for check in checks]


def test_one_probe_per_kind_the_first_and_a_warning_for_each_other():
    checks = checked(
        {"http": "http://127.0.0.1:8000/live", "role": "liveness"},
        {"tcp": 8000, "role": "both"},
        {"exec": "test -e /tmp/ok", "role": "readiness"},
        {"http": "http://127.0.0.1:8000/deep", "role": "liveness"},
    )
    app = SimpleNamespace(name="many", env={}, options={"health": checks})
    notes: list[str] = []
    liveness, readiness = probes(app, 8000, notes)
    assert liveness["httpGet"] == {"path": "/live", "port": 8000}
    assert readiness["tcpSocket"] == {"port": 8000}
    assert notes == [
        "health (both) tcp '127.0.0.1:8000': a pod has one livenessProbe, from health "
        "(liveness) http 'http://127.0.0.1:8000/live': not exported as one",
        "health (readiness) exec 'test -e /tmp/ok': a pod has one readinessProbe, from "
        "health (both) tcp '127.0.0.1:8000': not exported as one",
        "health (liveness) http 'http://127.0.0.1:8000/deep': a pod has one "
        "livenessProbe, from health (liveness) http 'http://127.0.0.1:8000/live': not "
        "exported as one",
    ]


def test_wait_ready_covers_every_readiness_check_without_a_warning():
    checks = checked({"tcp": 8000, "role": "readiness"}, {"exec": "true", "role": "readiness"})
    app = SimpleNamespace(name="r", env={}, options={"health": checks, "wait_ready": True})
    notes: list[str] = []
    liveness, readiness = probes(app, 8000, notes)
    assert liveness is None
    assert readiness["exec"]["command"] == ["corral", "ready", "r"]
    assert notes == []


def test_two_checks_of_one_role_in_a_file_are_refused_naming_the_app(tmp_path, manager):
    checks = [{"tcp": 8000, "role": "liveness"}, {"exec": "true", "role": "both"}]
    data = {"apps": [{"name": "two", "script": "a.py", "health": checks}]}
    with pytest.raises(ConfigError, match=r"\(two\): health: two checks have the role liveness"):
        render(write(tmp_path, data), manager)


def test_autostart_false_cronjob_runs_at_its_ticks_as_corral_does(tmp_path, manager):
    """corral's cron arms the job of an app added stopped and its tick starts it
    (plugins/cron: corral_process_added): a CronJob that runs at the ticks, not suspended,
    and no warning about a run at start."""
    data = {
        "apps": [
            {
                "name": "later",
                "script": "a.py",
                "autorestart": False,
                "autostart": False,
                "cron_restart": "0 4 * * *",
            }
        ]
    }
    result = render(write(tmp_path, data), manager)
    validate(result)
    (cron,) = by_kind(result, "CronJob")
    assert "suspend" not in cron["spec"]
    assert "suspend" not in cron["spec"]["jobTemplate"]["spec"]
    assert result.warnings == []


# -- a loopback app: its probes run inside the container ----------------------------


def loopback_app(listen: str = "127.0.0.1:8000", timeout: str = "1s") -> dict:
    return {
        "name": "db",
        "script": "db.py",
        "listen": listen,
        "health": [
            {"http": "http://127.0.0.1:8000/healthz", "role": "liveness", "timeout": timeout},
            {"tcp": "localhost:8000", "role": "readiness", "timeout": timeout},
        ],
    }


def test_a_loopback_app_gets_exec_probes_that_run_in_the_container(tmp_path, manager):
    """The kubelet probes the pod's IP: an app bound on 127.0.0.1 never answers it, and
    its httpGet liveness probe restarted the pod forever."""
    result = render(write(tmp_path, {"apps": [loopback_app()]}), manager)
    validate(result)
    (deployment,) = by_kind(result, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    liveness = container["livenessProbe"]["exec"]["command"]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert liveness[:2] == ["python3", "-c"] and liveness[3:] == [
        "http://127.0.0.1:8000/healthz",
        "1",
    ]
    assert readiness[:2] == ["python3", "-c"] and readiness[3:] == ["localhost", "8000", "1"]
    assert "httpGet" not in container["livenessProbe"]
    assert container["livenessProbe"]["timeoutSeconds"] == 1
    notes = [w for w in result.warnings if "exec probe" in w]
    assert notes == [
        f"db: health ({role}) {kind} {value!r}: the app listens on loopback only (listen "
        "'127.0.0.1:8000'), which the kubelet's probe of the pod's IP cannot reach: exported "
        "as an exec probe running python3 in the container"
        for role, kind, value in (
            ("liveness", "http", "http://127.0.0.1:8000/healthz"),
            ("readiness", "tcp", "localhost:8000"),
        )
    ]


def test_an_app_listening_on_every_address_keeps_native_probes(tmp_path, manager):
    result = render(write(tmp_path, {"apps": [loopback_app(":8000")]}), manager)
    (deployment,) = by_kind(result, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000}
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8000}
    assert not any("exec probe" in w for w in result.warnings)


def run_probe(command: list[str]) -> subprocess.CompletedProcess:
    """A probe's command as the kubelet runs it in the container, with this python."""
    assert command[0] == "python3"
    return subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=30
    )


def test_the_in_container_probes_really_probe(tmp_path, manager):
    import http.server
    import socket
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = {"/healthz": 200, "/moved": 302, "/bad": 500}.get(self.path, 404)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    try:
        port = server.server_address[1]

        def commands(url: str, tcp: str) -> tuple[list[str], list[str]]:
            app = {
                "name": "db",
                "script": "db.py",
                "listen": f"127.0.0.1:{port}",
                "health": [
                    {"http": url, "role": "liveness", "timeout": 500},
                    {"tcp": tcp, "role": "readiness", "timeout": 500},
                ],
            }
            result = render(write(tmp_path, {"apps": [app]}), manager)
            (deployment,) = by_kind(result, "Deployment")
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            return (
                container["livenessProbe"]["exec"]["command"],
                container["readinessProbe"]["exec"]["command"],
            )

        http_ok, tcp_ok = commands(f"http://127.0.0.1:{port}/healthz", f"127.0.0.1:{port}")
        assert run_probe(http_ok).returncode == 0
        assert run_probe(tcp_ok).returncode == 0
        moved, _ = commands(f"http://localhost:{port}/moved", f"127.0.0.1:{port}")
        assert run_probe(moved).returncode == 0  # 200-399 passes, as the health plugin says
        for path in ("/bad", "/missing"):
            failed, _ = commands(f"http://127.0.0.1:{port}{path}", f"127.0.0.1:{port}")
            done = run_probe(failed)
            assert done.returncode == 1 and "status" in done.stderr, done.stderr
        http_down, tcp_down = commands(f"http://127.0.0.1:{free}/healthz", f"127.0.0.1:{free}")
        for command in (http_down, tcp_down):
            done = run_probe(command)
            assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        hung, _ = commands(
            f"http://127.0.0.1:{silent.getsockname()[1]}/healthz", f"127.0.0.1:{port}"
        )
        began = time.monotonic()
        done = run_probe(hung)
        assert done.returncode == 1 and time.monotonic() - began < 10  # its own timeout, 0.5 s
    finally:
        server.shutdown()
        server.server_close()
        silent.close()


# -- names corral runtime --only would not find ----------------------------------------


@pytest.mark.parametrize("name", [" web ", "web ", "\tweb"])
def test_a_name_with_blanks_around_it_is_refused(tmp_path, manager, name):
    """corral runtime strips each name of --only: the pod found no app and exited 2."""
    path = write(tmp_path, {"apps": [{"name": name, "script": "a.py"}]})
    with pytest.raises(ConfigError) as caught:
        render(path, manager)
    assert str(caught.value) == (
        f"{path}: app {name!r}: blanks at the start or end of the name are dropped by "
        "corral runtime --only, which would find no app: rename it"
    )


@pytest.mark.parametrize("text", ["a\nb", "a\nb\n", "trail \nx", " lead\nx", "x\n\n", "one", ""])
def test_a_string_of_several_lines_is_a_block_that_reads_back(text):
    from corral.plugins.export.kubernetes import dump

    assert yaml.safe_load(dump([{"k": text}])) == {"k": text}


def test_a_listen_corral_refuses_is_refused_not_warned(tmp_path, manager):
    """It was exported with a warning ("no fixed port") while corral runtime refuses it."""
    path = write(
        tmp_path, {"apps": [{"name": "web", "script": "a.py", "listen": "localhost:99999"}]}
    )
    with pytest.raises(ConfigError, match=r"\(web\): listen 'localhost:99999' is not an address"):
        render(path, manager)
