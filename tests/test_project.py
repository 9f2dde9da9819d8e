"""Project-level contracts: migrations, production settings, the README's commands."""
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "s3cr3t-" + "x" * 60


@pytest.mark.django_db
def test_makemigrations_check_is_clean():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def _run_production(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    # A deployment has none of the test-only switches (e.g. the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE).
    dropped = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(DJANGO_SETTINGS_MODULE="warning_system.settings.production", **env_overrides)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "overrides,complaint",
    [
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "warn.example.org", "DEBUG": "true"}, "DEBUG must be off"),
        ({"ALLOWED_HOSTS": "warn.example.org"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short", "ALLOWED_HOSTS": "warn.example.org"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": GOOD_SECRET}, "ALLOWED_HOSTS must name"),
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name"),
    ],
)
def test_production_settings_refuse_insecure_configuration(overrides, complaint):
    result = _run_production(overrides, "check")
    assert result.returncode != 0
    assert "Refusing to start with insecure production settings" in result.stderr
    assert complaint in result.stderr


def test_production_check_deploy_is_clean():
    result = _run_production({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "warn.example.org"}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, flags=re.M))


def test_readme_commands_exist_in_makefile():
    readme = (ROOT / "README.md").read_text()
    commands = set(re.findall(r"\bmake ([a-z][\w-]*)", readme))
    assert {"run", "test"} <= commands
    assert commands <= _make_targets(), commands - _make_targets()


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_env_example_documents_every_setting_read_from_the_environment():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    read = set()
    for path in (ROOT / "warning_system" / "settings").glob("*.py"):
        read |= set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", path.read_text()))
    assert read - documented == set(), f"undocumented: {sorted(read - documented)}"
