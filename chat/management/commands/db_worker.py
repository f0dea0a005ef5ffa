"""`manage.py db_worker`: django-tasks-db's worker, with Parley's retries and its recovery of tasks a
killed worker left running (chat/jobs.py). It takes the place of django-tasks-db's command because
chat comes before django_tasks_db in INSTALLED_APPS; every option is the same.

Stop it with SIGTERM (supervisor does, `make run`'s Ctrl+C too): it finishes the task in hand, then
exits. A second signal stops the task too, and it is queued again.
"""

import functools
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from chat import jobs

log = logging.getLogger("chat.jobs")


class Worker(db_worker.Worker):
    def run(self) -> None:
        # A thread of its own, so a long task or an empty queue's sleep never delays the sweep.
        threading.Thread(target=self._sweep_forever, name="lost-task-sweep", daemon=True).start()
        super().run()

    def run_task(self, db_task_result: DBTaskResult) -> None:
        # django-tasks-db marks the row FAILED on any exception, through set_failed: a job's row may
        # instead go back in the queue (this instance's set_failed only; nothing else changes).
        db_task_result.set_failed = functools.partial(jobs.after_failure, db_task_result)
        with jobs.running(db_task_result):
            super().run_task(db_task_result)

    def _sweep_forever(self) -> None:
        while True:
            try:
                jobs.recover_lost_tasks(self.backend_name)
            except Exception:  # the database away for a moment: the next sweep tries again
                log.exception("Looking for tasks that lost their worker failed")
            finally:
                close_old_connections()
            time.sleep(settings.CHAT_TASK_SWEEP_SECONDS)


class Command(db_worker.Command):
    help = "Run the background worker (django-tasks-db's, with retries and recovery of lost tasks)"

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options: Any,
    ) -> None:
        # As django-tasks-db's handle(), with Parley's Worker.
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise db_worker.CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        if reload and not batch:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":  # only the child runs tasks
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
        connection.close()
