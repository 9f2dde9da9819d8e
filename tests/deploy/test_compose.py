"""docker-compose.yml, Dockerfile, .dockerignore and gunicorn.conf.py, checked as files.

No container engine runs in CI, so these tests hold the deployment files to
their contracts with the code: the commands they run exist, the environment
they pass is what the settings read, start-up is gated on health, and the
stack fits the 2 GB VPS it is sized for.
"""
from __future__ import annotations

import fnmatch
import importlib
import json
import re
import gc
import runpy
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.management import get_commands
from gunicorn import glogging
from gunicorn.config import Config

from .conftest import OPERATOR_ENV, ROOT, MissingRequiredVariable, dockerfile_healthcheck_code, env_names_read, interpolate

EXPECTED_SERVICES = {"postgres", "redis", "kafka", "migrate", "topics", "web", "consumer"}
LONG_RUNNING = {"postgres", "redis", "kafka", "web", "consumer"}
REQUIRED_APP_ENV = {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}
VPS_MEMORY_MB = 2048


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


def _manage_py_commands(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == "manage.py"]


def _megabytes(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG])?[bB]?", str(value)).groups()
    return float(number) * {"k": 1 / 1024, "m": 1, "g": 1024}[(unit or "m").lower()]


def _gunicorn_config(monkeypatch, **env: str) -> Config:
    """gunicorn.conf.py loaded the way gunicorn loads it: every known name set (and validated) on a Config."""
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_KEEPALIVE", "LOG_FORMAT", "LOG_LEVEL", "ACCESS_LOG", "ACCESS_LOG_SLOW_MS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = Config()
    for name, value in _run_gunicorn_conf().items():
        if name in cfg.settings:
            cfg.set(name.lower(), value)
    return cfg


def _run_gunicorn_conf() -> dict:
    """The module's names; the garbage collector it switches off for gunicorn's master is switched back on here."""
    try:
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        gc.enable()


def test_compose_declares_the_full_stack(services):
    assert set(services) == EXPECTED_SERVICES
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert re.fullmatch(r"apache/kafka:(3\.9\.\d+|4\.\d+\.\d+)", services["kafka"]["image"])


def test_app_services_build_one_image_from_this_repository(app_services):
    assert set(app_services) == {"migrate", "topics", "web", "consumer"}
    assert {service["build"] for service in app_services.values()} == {"."}
    assert len({service["image"] for service in app_services.values()}) == 1


def test_every_manage_py_command_the_deployment_runs_exists(app_services, dockerfile):
    known = get_commands()
    commands = [name for service in app_services.values() for name in _manage_py_commands(_command(service))]
    commands += [name for keyword, args in dockerfile if keyword == "RUN" for name in _manage_py_commands(args.split())]
    assert {"migrate", "create_topics", "consume_readings", "collectstatic"} <= set(commands)
    assert [name for name in commands if name not in known] == []


def test_web_runs_gunicorn_with_the_repository_config_and_an_importable_app(services, dockerfile):
    command = _command(services["web"])
    [docker_cmd] = [args for keyword, args in dockerfile if keyword == "CMD"]
    assert command[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert (ROOT / command[2]).is_file()
    assert json.loads(docker_cmd) == command
    module_name, attribute = command[3].split(":")
    application = getattr(importlib.import_module(module_name), attribute)
    assert callable(application)


def test_gunicorn_config_takes_workers_and_threads_from_the_environment(monkeypatch):
    cfg = _gunicorn_config(monkeypatch, GUNICORN_WORKERS="3", GUNICORN_THREADS="6")
    assert (cfg.workers, cfg.threads) == (3, 6)
    assert cfg.worker_class_str == "warning_system.gunicorn_worker.BalancedThreadWorker"  # gthread, balanced
    from gunicorn.workers.gthread import ThreadWorker

    assert issubclass(cfg.worker_class, ThreadWorker)


def test_gunicorn_config_defaults_suit_a_small_vps(monkeypatch):
    cfg = _gunicorn_config(monkeypatch)
    assert cfg.bind == ["0.0.0.0:8000"]
    assert (cfg.workers, cfg.threads) == (2, 32)
    assert (cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (30, 30, 5)
    assert cfg.max_requests > 0 and 0 < cfg.max_requests_jitter < cfg.max_requests
    assert cfg.limit_request_line <= 4094 and cfg.limit_request_fields <= 100
    assert cfg.preload_app is True
    assert cfg.accesslog == "-"


def test_gunicorn_logs_json_unless_text_is_asked_for(monkeypatch):
    as_json = _gunicorn_config(monkeypatch)
    assert as_json.logconfig_dict["formatters"]["json"]["()"] == "warning_system.logging.JsonFormatter"
    assert issubclass(as_json.logger_class, glogging.Logger) and as_json.logger_class is not glogging.Logger
    as_text = _gunicorn_config(monkeypatch, LOG_FORMAT="text")
    assert as_text.logconfig_dict == {}
    assert issubclass(as_text.logger_class, glogging.Logger) and as_text.logger_class is not as_json.logger_class


def test_access_log_keeps_failures_and_slow_requests_by_default(monkeypatch):
    cfg = _gunicorn_config(monkeypatch)
    assert cfg.accesslog == "-"
    monkeypatch.delenv("ACCESS_LOG", raising=False)
    namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    wanted = namespace["access_wanted"]
    assert namespace["ACCESS_LOG"] == "errors"
    assert not wanted(202, 3.0) and not wanted(200, 999.0)
    assert wanted(400, 1.0) and wanted(503, 1.0) and wanted(202, 1000.0)
    assert wanted(202, 1.0, mode="all") and not wanted(500, 1.0, mode="off")


def test_access_log_can_log_everything_or_nothing(monkeypatch):
    assert _gunicorn_config(monkeypatch, ACCESS_LOG="all").accesslog == "-"
    assert _gunicorn_config(monkeypatch, ACCESS_LOG="off").accesslog is None
    with pytest.raises(ValueError, match="ACCESS_LOG"):
        _gunicorn_config(monkeypatch, ACCESS_LOG="verbose")


def test_app_environment_names_are_all_read_by_the_settings(app_services, settings_env_names):
    gunicorn_names = env_names_read(ROOT / "gunicorn.conf.py")
    understood = settings_env_names | {"DJANGO_SETTINGS_MODULE"}
    for name, service in app_services.items():
        unknown = set(service["environment"]) - understood - (gunicorn_names if name == "web" else set())
        assert unknown == set(), f"{name} sets names nothing reads: {sorted(unknown)}"


def test_app_services_get_every_required_setting_pointing_at_compose_services(resolved_services):
    for name, service in resolved_services.items():
        if "build" not in service:
            continue
        env = service["environment"]
        assert REQUIRED_APP_ENV <= set(env), f"{name} lacks {sorted(REQUIRED_APP_ENV - set(env))}"
        assert all(env[key] for key in REQUIRED_APP_ENV), name
        assert env["DJANGO_SETTINGS_MODULE"] == "warning_system.settings.production"
        assert (env["SECRET_KEY"], env["ALLOWED_HOSTS"]) == (OPERATOR_ENV["SECRET_KEY"], OPERATOR_ENV["ALLOWED_HOSTS"])
        database = urlparse(env["DATABASE_URL"])
        assert database.scheme in ("postgres", "postgresql") and database.hostname in resolved_services
        assert urlparse(env["REDIS_URL"]).hostname in resolved_services
        for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
            assert server.split(":")[0] in resolved_services


@pytest.mark.parametrize("name", ["SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_PASSWORD"])
def test_compose_refuses_to_start_without_a_required_secret_or_host(compose, name):
    # ``${NAME:?message}``: compose stops with the message instead of passing "" along.
    for environ in ({k: v for k, v in OPERATOR_ENV.items() if k != name}, {**OPERATOR_ENV, name: ""}):
        with pytest.raises(MissingRequiredVariable, match=name):
            interpolate(compose, environ)


def test_database_url_matches_the_postgres_service(resolved_services):
    postgres = resolved_services["postgres"]["environment"]
    for service in resolved_services.values():
        if "build" in service:
            url = urlparse(service["environment"]["DATABASE_URL"])
            assert (url.username, url.password, url.path.lstrip("/"), url.port) == (
                postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"], 5432)


def test_kafka_is_a_single_node_kraft_broker_the_apps_can_reach(services, app_services):
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["CLUSTER_ID"]
    assert str(kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"]).startswith(f"{kafka['KAFKA_NODE_ID']}@")
    controller = kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert f"{controller}://" in kafka["KAFKA_LISTENERS"]
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listener_names = {item.split("://")[0] for item in kafka["KAFKA_LISTENERS"].split(",")}
    assert listener_names <= set(protocols)
    advertised = {item.split("://")[1] for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for service in app_services.values():
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] in advertised
    for factor in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert int(kafka[factor]) == 1
    assert str(kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    data_volumes = {volume.split(":")[1] for volume in services["kafka"]["volumes"]}
    assert kafka["KAFKA_LOG_DIRS"] in data_volumes


def test_backing_services_and_web_have_healthchecks(services):
    for name in ("postgres", "redis", "kafka", "web"):
        check = services[name]["healthcheck"]
        assert not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_web_healthcheck_runs_the_same_probe_as_the_image(services, dockerfile):
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "-c", dockerfile_healthcheck_code(dockerfile)]


def test_services_without_http_disable_the_image_healthcheck(services):
    # The image's HEALTHCHECK probes the API; inherited by these it would mark them unhealthy.
    for name in ("consumer", "migrate", "topics"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_web_and_consumer_start_after_migrations_topics_and_healthy_services(services):
    for name in ("web", "consumer"):
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            "migrate": "service_completed_successfully",
            "topics": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "kafka": "service_healthy",
        }, name


def test_one_shot_jobs_wait_for_their_backend_and_do_not_restart(services):
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("migrate", "topics"):
        assert services[name]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name


def test_consumer_can_be_scaled(services):
    consumer = services["consumer"]
    assert "container_name" not in consumer
    assert "ports" not in consumer
    assert consumer["stop_grace_period"]


def test_only_the_api_is_published_and_by_default_only_to_localhost(services):
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"web"}
    [mapping] = services["web"]["ports"]
    assert mapping.startswith("${WEB_BIND:-127.0.0.1}:") and mapping.endswith(":8000")


def test_memory_limits_fit_a_2gb_vps(services):
    limits = {name: _megabytes(services[name]["deploy"]["resources"]["limits"]["memory"]) for name in LONG_RUNNING}
    assert sum(limits.values()) <= VPS_MEMORY_MB, limits
    heap = re.search(r"-Xmx(\d+)m", services["kafka"]["environment"]["KAFKA_HEAP_OPTS"])
    assert int(heap.group(1)) <= limits["kafka"] * 0.75
    probe_heap = re.search(r"KAFKA_HEAP_OPTS=-Xmx(\d+)m", services["kafka"]["healthcheck"]["test"][1])
    assert int(probe_heap.group(1)) + int(heap.group(1)) < limits["kafka"]


def test_dockerfile_is_multi_stage_slim_and_copies_only_the_venv(dockerfile):
    stages = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(stages) >= 2
    base = dict(re.findall(r"([A-Z_]+)=(\S+)", " ".join(args for keyword, args in dockerfile if keyword == "ARG")))
    assert base["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert any("requirements.txt" in args for keyword, args in dockerfile if keyword == "RUN")
    assert any(args.startswith("--from=builder /opt/venv") for keyword, args in dockerfile if keyword == "COPY")


def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    final_stage = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    user_at = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "USER")
    creates_user = [args for keyword, args in dockerfile[final_stage:user_at] if keyword == "RUN" and "useradd" in args]
    assert creates_user and users[-1] in creates_user[0]


def test_dockerfile_collects_static_files_and_probes_health(dockerfile, collectstatic_build_env):
    assert {"SECRET_KEY", "ALLOWED_HOSTS"} <= set(collectstatic_build_env)
    env = " ".join(args for keyword, args in dockerfile if keyword == "ENV")
    assert "DJANGO_SETTINGS_MODULE=warning_system.settings.production" in env
    assert "MODEL_DIR=/app/models" in env
    assert "http://127.0.0.1:8000/api/v1/health" in dockerfile_healthcheck_code(dockerfile)


def test_dockerignore_keeps_local_state_and_secrets_out_but_models_in():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern) for pattern in patterns)

    for path in (".git", ".venv", ".env", "db.sqlite3", "staticfiles", "test-artifacts", "sensors/__pycache__/x.pyc"):
        assert ignored(path), path
    for path in ("models", "models/landslide.ubj", "requirements.txt", "manage.py", "gunicorn.conf.py",
                 "templates", "static", "warning_system/settings/production.py"):
        assert not ignored(path), path


def test_deployment_guide_names_only_commands_and_variables_that_exist(compose, settings_env_names):
    guide = (ROOT / "docs" / "deployment.md").read_text()
    commands = set(re.findall(r"manage\.py (\w+)", guide))
    assert {"createsuperuser", "create_api_key", "consume_readings", "train_models"} <= commands
    assert commands - set(get_commands()) == set()
    compose_variables = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    kafka_variables = set(compose["services"]["kafka"]["environment"])
    known = settings_env_names | env_names_read(ROOT / "gunicorn.conf.py") | compose_variables | kafka_variables
    known |= {name for name in dir(settings) if name.isupper()} | {"REMOTE_ADDR"}  # Django settings, the CGI variable
    named = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:=[^`]*)?`", guide))
    assert named - known == set()


def test_gunicorn_workers_start_with_the_startup_objects_frozen_and_collection_on(monkeypatch):
    """The master imports without collecting and freezes before forking; then master and workers collect again."""
    conf = _run_gunicorn_conf()
    gc.disable()  # as loading the file does in gunicorn's master
    try:
        conf["pre_fork"](None, None)
        assert gc.get_freeze_count() > 10_000  # Django, the views, NumPy... are in the permanent generation
        assert gc.isenabled()  # the master collects its own later garbage
        gc.disable()
        conf["post_fork"](None, None)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_fully_read_body_keeps_its_connection_alive_even_when_the_thread_stalls(monkeypatch):
    """A kept-alive connection is closed only for a body left unread, never for a GIL stall of a few ms.

    gunicorn 27 bounded the drain after each answer by the 5 ms first-bytes
    wait, checked before the first read: a thread that waited for the GIL
    in between closed a connection it had just answered with keep-alive.
    """
    import socket
    from types import SimpleNamespace

    import gunicorn.http.parser as parser_module
    from gunicorn.http.parser import Parser
    from gunicorn.workers import gthread

    conf = _run_gunicorn_conf()
    assert gthread.DEFAULT_WORKER_DATA_TIMEOUT == conf["FIRST_DATA_WAIT_SECONDS"] == 0.005
    clock = [1000.0]

    def stalling_clock() -> float:  # every reading of the clock is 20 ms after the last one
        clock[0] += 0.020
        return clock[0]

    monkeypatch.setattr(parser_module.time, "monotonic", stalling_clock)
    monkeypatch.setattr(gthread.time, "monotonic", stalling_clock)
    near, far = socket.socketpair()
    try:
        parser = SimpleNamespace(mesg=SimpleNamespace(body=SimpleNamespace(read=lambda size: b"", failed=False)),
                                 unreader=SimpleNamespace(sock=near))
        parser.finish_body = lambda **kwargs: Parser.finish_body(parser, **kwargs)
        conn = SimpleNamespace(parser=parser)

        assert gthread.ThreadWorker._keepalive_after(None, conn, True) is True  # body read: stays alive
        stock_deadline = clock[0] + gthread.DEFAULT_WORKER_DATA_TIMEOUT  # gunicorn's own method, with the 5 ms
        assert Parser.finish_body(parser, deadline=stock_deadline) is False
        assert gthread.ThreadWorker._keepalive_after(None, conn, False) is False  # the answer said close
    finally:
        near.close()
        far.close()


def test_benchmark_runs_the_deployments_redis_and_judges_memory_by_its_limits(services):
    """bench/run.py takes Redis's command line and the memory limits from this file, not from copies of them."""
    from bench.run import compose_memory_limits, compose_redis_args

    assert ["redis-server", *compose_redis_args()] == services["redis"]["command"]
    assert "--maxmemory" in compose_redis_args() and "--maxmemory-policy" in compose_redis_args()
    assert compose_memory_limits() == {name: _megabytes(services[name]["deploy"]["resources"]["limits"]["memory"]) for name in LONG_RUNNING}
