"""Settings, one module per concern, all read from the environment.

``warning_system.settings`` is the development default (safe, embedded:
SQLite, local-memory cache, eager pipeline). ``warning_system.settings.production``
adds the production hardening and refuses insecure configurations.
"""
from .env import BASE_DIR, env  # noqa: F401
from .core import *  # noqa: F401,F403
from .database import *  # noqa: F401,F403
from .cache import *  # noqa: F401,F403
from .kafka import *  # noqa: F401,F403
from .api import *  # noqa: F401,F403
from .pipeline import *  # noqa: F401,F403
from .logging import *  # noqa: F401,F403
