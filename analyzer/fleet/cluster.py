"""`dgcap report --scheduler local|tcp://HOST:PORT`: one Dask task per capture.

Captures are independent, so the capture is the unit of work: each task analyses one
file on a worker (redacting there: secrets never travel unredacted) and returns its
result, its --stream lines and its line records; the client writes them as each task
finishes, whatever the order, and keeps the input order for the document formats.
A task that fails (its worker killed by the OOM killer, the scheduler gone) becomes that
capture's error row; the run goes on.  `local` starts a LocalCluster of -j N single-
threaded worker processes (the same parallelism as -j N) with Dask's dashboard; an
address uses a running cluster, whose workers must have dgcap installed and see the
capture paths as given (a shared file system).
"""
from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import Callable, Optional

MISSING_DASK = "--scheduler needs dask.distributed: pip install 'dgcap[fleet]'"
DASHBOARD = ":8787"  # Dask's usual port; Dask picks another one when it is taken
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?[^\s/:]+(?::\d+)?/?$")


class SchedulerUnavailable(OSError):
    """The Dask scheduler could not be started or reached (one line, exit 2)."""


def scheduler_problem(scheduler: str) -> Optional[str]:
    """Why `--scheduler VALUE` cannot be used (before any work starts), or None."""
    if scheduler != "local" and not _ADDRESS.match(scheduler):
        return f"--scheduler {scheduler!r}: give 'local' or a Dask scheduler address like tcp://HOST:8786"
    try:
        import distributed  # noqa: F401
    except ImportError:
        return MISSING_DASK
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def analyze_on_dask(files: list[str], scheduler: str, jobs: int, display, task: Callable, task_args: tuple,
                    stream: Optional[Callable[[str], None]], records: Optional[Callable[[list], None]],
                    lost: Callable[[str, str], tuple]) -> list[tuple]:
    """(CaptureReport, problem) per file, in input order.

    task(path, *task_args) runs on a worker and returns (CaptureReport, problem, lines,
    records); lines go to `stream` and records to `records` as each task completes; a
    task that raised becomes lost(path, why).
    """
    from distributed import Client, LocalCluster, as_completed

    cluster = client = None
    try:
        if scheduler == "local":
            dashboard = DASHBOARD if _has_bokeh() else None
            cluster = LocalCluster(n_workers=max(1, min(jobs, len(files))), threads_per_worker=1,
                                   processes=True, dashboard_address=dashboard, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            # How long to try: Dask's own setting, distributed.comm.timeouts.connect (30 s by default;
            # DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s in the environment).
            client = Client(scheduler)
    except (OSError, TimeoutError, ValueError) as e:
        if cluster is not None:
            cluster.close()
        where = "cannot start a local Dask cluster" if scheduler == "local" else \
            f"{scheduler}: cannot reach the Dask scheduler"
        raise SchedulerUnavailable(f"{where} ({_describe(e)})") from None
    try:
        if client.dashboard_link and scheduler == "local":
            sys.stderr.write(f"dgcap: Dask dashboard: {client.dashboard_link}\n")
        run = uuid.uuid4().hex[:8]
        futures = [client.submit(task, path, *task_args, key=f"dgcap-report-{run}-{i}", pure=False)
                   for i, path in enumerate(files)]
        position = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(files)
        for future in as_completed(futures):
            i = position[future.key]
            try:
                cap, problem, lines, batch = future.result()
            except Exception as e:  # KilledWorker, a lost connection, an error outside the analysis
                results[i] = lost(files[i], _describe(e))
            else:
                if stream is not None:
                    for line in lines:
                        stream(line)
                if records is not None and batch:
                    records(batch)
                results[i] = (cap, problem)
            future.release()
            display.done(i)
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True
