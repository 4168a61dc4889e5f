"""A bare Celery app for the health-check test: a real worker with a chosen queue.

Stands in for ``fleet_queue.celery_app`` so the check is tested on its own; the
broker comes from ``FLEET_BROKER_URL`` like the real app's.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("fleet-probe", broker=os.environ["FLEET_BROKER_URL"])
app.conf.worker_hijack_root_logger = False
