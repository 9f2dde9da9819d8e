"""The environment reader shared by every settings module.

Settings come from environment variables (12-factor). A ``.env`` file in the
project root is read when present so local overrides need no shell exports;
real environment variables always win over it.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
