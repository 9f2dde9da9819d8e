"""What the consume_readings process carries: scoring without scikit-learn, pandas or SciPy in memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.kafka_utils import ROOT


def test_the_consumer_command_scores_without_importing_scikit_learn():
    """xgboost's scikit-learn wrapper pulls in pandas and SciPy: ~95 MB of the consumer's 300 MB budget."""
    code = (
        "import json, sys, django; django.setup();"
        "import numpy as np;"
        "from sensors.management.commands.consume_readings import ReadingsConsumer;"
        "from predictions.features import N_FEATURES;"
        "from predictions.scoring import get_registry;"
        "p = get_registry().score(np.zeros((3, N_FEATURES), dtype=np.float32));"
        "print(json.dumps({'scored': len(p['landslide']), 'sklearn': 'sklearn' in sys.modules,"
        " 'pandas': 'pandas' in sys.modules, 'importable': __import__('importlib').util.find_spec('sklearn') is not None}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "warning_system.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {"scored": 3, "sklearn": False, "pandas": False, "importable": True}
