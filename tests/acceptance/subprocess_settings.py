"""``tests.settings`` with overrides for a subprocess, from its environment.

``GEARTRAIN_OVERRIDES``: a JSON object of ``GEARTRAIN`` entries to change;
``GEARTRAIN_LOG_LEVEL``: the level of the ``geartrain`` loggers (default WARNING).
Used by :func:`tests.acceptance.workers.worker_env`.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal

from tests.settings import *  # noqa: F403
from tests.settings import GEARTRAIN as BASE_GEARTRAIN
from tests.settings import LOGGING as BASE_LOGGING

GEARTRAIN = {
    **BASE_GEARTRAIN,
    **json.loads(os.environ.get("GEARTRAIN_OVERRIDES", "{}")),
}
LOGGING = {
    **BASE_LOGGING,
    "loggers": {
        "geartrain": {
            "handlers": ["console"],
            "level": os.environ.get("GEARTRAIN_LOG_LEVEL", "WARNING"),
        }
    },
}

# A test that finds a worker's process still alive can ask it where it is stuck
# (tests.acceptance.workers.describe): the stacks of all its threads go to its log.
faulthandler.register(signal.SIGUSR1, all_threads=True)
