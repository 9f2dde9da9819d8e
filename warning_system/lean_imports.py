"""Import xgboost without its scikit-learn wrapper in processes that only score.

The web workers and the consumer score with ``xgboost.Booster`` only, but
``import xgboost`` imports its scikit-learn wrapper whenever scikit-learn is
installed (it is, for ``train_models``), and scikit-learn imports pandas and
most of SciPy: ~95 MB of RSS per process for code they never run (web
worker 198 -> 104 MB after the URLconf import; consumer 205 -> 116 MB at
start). Marking ``sklearn`` unimportable while xgboost is first imported
makes xgboost skip its wrapper (``xgboost.compat.SKLEARN_INSTALLED`` is
False in that process); the mark is removed afterwards, so nothing else
changes. A process that trains imports xgboost normally.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def xgboost_without_sklearn() -> Iterator[None]:
    """Within the block, a first ``import xgboost`` leaves scikit-learn (and pandas, SciPy) out."""
    blocked = "sklearn" not in sys.modules and "xgboost" not in sys.modules
    if blocked:
        sys.modules["sklearn"] = None  # `import sklearn` raises ImportError
    try:
        yield
    finally:
        if blocked:
            del sys.modules["sklearn"]
