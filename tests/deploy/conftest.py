"""Deployment files read as data: docker-compose.yml, the Dockerfile and the settings' env names.

There is no container engine in CI, so these fixtures parse the files the
engine would read, and the tests check the contracts between them and the code.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, args = logical.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def dockerfile_healthcheck_code(instructions: list[tuple[str, str]]) -> str:
    """The Python source the image's HEALTHCHECK runs (exec form: CMD ["python", "-c", code])."""
    [args] = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    exec_form = json.loads(args[args.index("CMD") + 3:].strip())
    assert exec_form[:2] == ["python", "-c"], exec_form
    return exec_form[2]


def env_names_read(path: Path) -> set[str]:
    """Environment variable names a Python file reads through django-environ or os.environ."""
    text = path.read_text()
    names = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
    names |= set(re.findall(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"", text))
    return names


class MissingRequiredVariable(KeyError):
    """A ``${NAME:?message}`` variable was unset: ``docker compose`` refuses to start."""


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, environ: dict[str, str]):
    """Compose-spec variable interpolation (``$VAR``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``)."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        current = environ.get(name)
        unset = current is None or (current == "" and operator is not None and operator.startswith(":"))
        if operator in ("-", ":-"):
            return argument if unset else current
        if operator in ("?", ":?"):
            if unset:
                raise MissingRequiredVariable(f"{name}: {argument}")
            return current
        if operator in ("+", ":+"):
            return "" if unset else argument
        return current or ""

    return _VARIABLE.sub(substitute, value)


# What an operator puts in .env: the variables compose requires.
OPERATOR_ENV = {
    "SECRET_KEY": "k" * 64,
    "ALLOWED_HOSTS": "warn.example.org",
    "POSTGRES_PASSWORD": "0123456789abcdef",
}


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="session")
def resolved_services(compose) -> dict:
    """The services as ``docker compose config`` would render them for OPERATOR_ENV."""
    return interpolate(compose, OPERATOR_ENV)["services"]


@pytest.fixture(scope="session")
def app_services(services) -> dict:
    """The services built from this repository's Dockerfile."""
    return {name: service for name, service in services.items() if "build" in service}


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def settings_env_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "warning_system" / "settings").glob("*.py"):
        names |= env_names_read(path)
    return names


@pytest.fixture(scope="session")
def collectstatic_build_env(dockerfile) -> dict[str, str]:
    """The inline NAME=value pairs the Dockerfile's collectstatic RUN passes."""
    [run] = [args for keyword, args in dockerfile if keyword == "RUN" and "collectstatic" in args]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", run.split("python manage.py collectstatic")[0]))
