"""A Ray cluster as a runner: one Ray task per candidate, on a local cluster or an
existing one of many nodes. Ray is imported only when this runner is chosen
(:data:`nas.registry.RUNNERS`)."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import ray
import ray.exceptions as rex

import nas
import search_spaces
from nas import registry
from nas.config import plain
from nas.data import default_cache_dir
from nas.evaluate.candidate import Feed, Result, failure_reason
from nas.evaluate.runners import Runner
from nas.evaluate.tasks import Task, run_task

log = logging.getLogger(__name__)

class RayRunner(Runner):
    """One Ray task per candidate, on a local cluster or an existing one of many nodes.

    * Code: the ``nas`` and ``search_spaces`` packages travel in the job's ``runtime_env``
      (``py_modules``, uploaded once by content hash), so nodes need only the
      dependencies (torch, Lightning, ...: in the nodes' image, or through ``runtime_env``).
    * Data: a data set read from files (cifar10, cifar100, imagefolder) is decoded here
      once, its cache file put in the object store once and written on each node, the
      first time a task runs there, as ``shipped-<sha256>.npz`` in that node's cache
      folder; digits and synthetic data are made by the code itself.
    * Failures: an infrastructure failure (the node died, Ray's memory monitor or anything
      else killed the worker process, an object was lost) is not the candidate's fault: the
      candidate is submitted again, up to ``max_retries`` times, wherever Ray finds room.
      Only the candidate's own failure (NaN loss, its own out-of-memory, time limit, an
      exception in its code) or exhausted retries make a failed result; each candidate gets
      exactly one result. Ray's own task retries are off so that each attempt gets its own
      time limit and the attempts are counted (``extra["attempts"]``).
    * Slots: how many candidates run at once is read from the cluster's resources each
      time a slot is filled, so nodes that join mid-run get work (and lost nodes' slots
      are not waited for). ``gpus_per_task`` below 1 packs several small candidates onto
      one GPU.

    Args:
        address: an existing cluster ("auto", "ray://host:10001", "host:6379"); None
            starts a local one (shut down again by `close`; a cluster this evaluator did
            not start is left running).
        num_cpus: CPUs of the local cluster (None: all).
        cpus_per_task: CPUs reserved per candidate; also its torch thread count unless
            ``train.num_threads`` is set.
        gpus_per_task: GPUs per candidate (0.25: four candidates share a GPU); None: 1 when
            the cluster has GPUs, else 0.
        max_retries: submissions after an infrastructure failure, per candidate.
        ship_code: send this process's ``nas`` and ``search_spaces`` packages to the
            nodes (False: the nodes have them installed).
        runtime_env: further Ray runtime environment of the job (``pip``, ``env_vars``,
            ``image_uri``, ...), merged with the shipped code. Both apply when this
            evaluator connects; a process that called ``ray.init`` itself keeps its own.
        timeout_s: hard per-attempt limit from submission: the task is cancelled with
            ``ray.cancel(force=True)`` and the candidate fails with "timeout ...".
        **common: see `Runner`.
    """

    def __init__(self, task: Task, *, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_task: float = 1, gpus_per_task: float | None = None,
                 max_retries: int = 3, ship_code: bool = True,
                 runtime_env: Mapping | None = None, **common: Any) -> None:
        super().__init__(task, **common)

        if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, (int, float)) \
                or not cpus_per_task > 0:
            raise ValueError(f"cpus_per_task={cpus_per_task!r} is invalid; pass a number > 0")
        if gpus_per_task is not None and (isinstance(gpus_per_task, bool) or not isinstance(
                gpus_per_task, (int, float)) or gpus_per_task < 0
                or (gpus_per_task > 1 and gpus_per_task != int(gpus_per_task))):
            raise ValueError(f"gpus_per_task={gpus_per_task!r} is invalid; pass a fraction of "
                             f"one GPU (0 < x <= 1, e.g. 0.25), a whole number, 0 or null")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r} is invalid; pass an integer >= 0")
        env = dict(plain(runtime_env or {}))
        if ship_code:
            env = code_runtime_env(env)
        self._started = False
        if not ray.is_initialized():
            ray_connect(address, num_cpus, runtime_env=env)
            self._started = address is None
        elif env:
            log.warning("Ray was initialised before the evaluator: its runtime_env applies, "
                        "not evaluator.runtime_env / ship_code")
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        self.cpus_per_task, self.gpus_per_task = float(cpus_per_task), float(gpus_per_task)
        self.max_retries = max_retries
        if self.task.train.num_threads is None:
            self.task.train = replace(self.task.train, num_threads=max(1, int(cpus_per_task)))
        self._remote = ray.remote(run_ray_task).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
        self._data_ref: Any = None  # the data set's cache file in the object store
        self._data_digest: str | None = None
        self._inflight: dict[Any, tuple[int, float, int]] = {}

    @property
    def slots(self) -> int:
        """Candidates that fit on the cluster now (at least 1), read from its resources."""
        return ray_slots(ray.cluster_resources(), self.cpus_per_task, self.gpus_per_task)

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        self._ship_data()
        retry: deque[tuple[int, int]] = deque()  # (task, attempts so far) to submit again
        inflight = self._inflight
        def fill() -> None:
            while (retry or tasks.queued) and len(inflight) < self.slots:
                i, attempt = retry.popleft() if retry else (tasks.next(), 0)
                inflight[self._submit(tasks[i])] = (i, self._deadline(), attempt)

        while not tasks.exhausted or inflight or retry:
            fill()
            if not inflight:
                tasks.next()  # raises: nothing queued, nothing running, the feed still open
            nearest = min(d for _, d, _ in inflight.values()) - time.monotonic()
            ready, _ = ray.wait(list(inflight), num_returns=1,
                                timeout=max(0.0, min(1.0, nearest)))
            for ref in ready:
                i, _, attempt = inflight.pop(ref)
                result = self._resolve(ref, tasks[i], attempt)
                if result is None:
                    retry.appendleft((i, attempt + 1))  # first in line for the next slot
                else:
                    fill()  # the freed slot starts what is queued before the callback runs
                    done(i, result)
            now = time.monotonic()
            for ref, (i, deadline, _) in list(inflight.items()):
                if now > deadline:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    done(i, Result.failed(tasks[i]["arch_id"],
                                          f"timeout after {self.timeout_s:g} s (task cancelled)"))

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout_s if self.timeout_s else float("inf")

    def _submit(self, task: dict) -> Any:
        """Start one attempt of ``task``; the data set's object goes as a top-level argument,
        so Ray moves it to the task's node once and hands it over without a copy."""
        return self._remote.remote(task, self._data_ref, self._data_digest)

    def _resolve(self, ref: Any, task: Mapping, attempt: int) -> Result | None:
        """The finished attempt's result, or None when it hit an infrastructure failure
        and is to be submitted again."""
        try:
            result = Result(**ray.get(ref))
        except Exception as e:  # noqa: BLE001 - crashed worker, dead node, error in the task
            system = ray_system_failure(e)
            if system is not None and should_retry(attempt, self.max_retries):
                log.warning("candidate %s: %s; submitting it again (attempt %d of %d)",
                            task["arch_id"], system, attempt + 2, self.max_retries + 1)
                return None
            reason = _ray_reason(e)
            if system is not None:
                reason = f"{system} ({attempt + 1} attempts)"
            result = Result.failed(task["arch_id"], reason)
        result.extra["attempts"] = attempt + 1
        return result

    def _ship_data(self) -> None:
        """Put the decoded data set (its cache file) in the object store, once."""
        if self._data_ref is not None or not self.data.get("root"):
            return
        kw = {k: v for k, v in self.data.items() if k != "name"}
        dm = registry.datamodule(self.data["name"], **kw)  # decodes once, or reads the cache
        if dm.cache_path is None:  # pragma: no cover - every file data set has a cache
            return
        blob = np.fromfile(dm.cache_path, dtype=np.uint8)
        self._data_digest = hashlib.sha256(blob).hexdigest()
        self._data_ref = ray.put(blob)
        log.info("data %s (%.1f MB, sha256 %s) in the object store", dm.cache_path,
                 blob.nbytes / 1e6, self._data_digest[:12])

    def _abort(self) -> None:
        for ref in list(self._inflight):
            ray.cancel(ref, force=True)
        self._inflight.clear()

    def close(self) -> None:
        self._abort()
        self._data_ref = None
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def ray_connect(address: str | None, num_cpus: int | None, *,
                runtime_env: Mapping | None = None) -> None:
    """``ray.init`` a local cluster (``address`` None) or connect to one, with the job's
    ``runtime_env`` (Ray uploads local packages only at the job level); ValueError naming
    the fix when nothing answers at ``address``."""
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "logging_level": logging.WARNING, "runtime_env": runtime_env or None}
    if address is None:
        kw["num_cpus"] = num_cpus
    fix = ("start one with `ray start --head` and pass its address (host:6379, "
           "ray://host:10001 or auto), or evaluator.address=null for a local cluster")
    if address not in (None, "auto", "local"):
        # Ray itself retries an unreachable address for minutes: ask the port first.
        host, _, port = str(address).split("://", 1)[-1].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"evaluator.address={address!r} is not host:port; {fix}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise ValueError(f"evaluator.address={address!r}: no Ray cluster reachable there "
                             f"({e.strerror or e}); {fix}") from None
    try:
        ray.init(address=address, **kw)
    except (ConnectionError, TimeoutError, ValueError) as e:
        ray.shutdown()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"evaluator.address={address!r}: no Ray cluster reachable there "
                         f"({first[:160]}); {fix}") from None


def code_runtime_env(env: Mapping | None = None) -> dict:
    """``env`` plus ``py_modules``: the ``nas`` and ``search_spaces`` packages this process
    imports, uploaded (by content hash, once) for every node; caches and bytecode excluded."""
    mods = [os.path.dirname(os.path.abspath(m.__file__)) for m in (nas, search_spaces)]
    env = dict(env or {})
    env["py_modules"] = list(env.get("py_modules") or []) + mods
    env["excludes"] = list(env.get("excludes") or []) + ["__pycache__/", "*.pyc"]
    return env


def ray_slots(resources: Mapping[str, float], cpus_per_task: float,
              gpus_per_task: float) -> int:
    """Candidates that fit in ``resources`` (``ray.cluster_resources()``) at once; at least
    1, so a cluster momentarily without nodes still gets a task queued."""
    slots = int(resources.get("CPU", 0) // cpus_per_task)
    if gpus_per_task:
        # Round first: 1 GPU / 0.1 is 9.999... in floating point, and Ray grants 10.
        slots = min(slots, int(round(resources.get("GPU", 0) / gpus_per_task, 6)))
    return max(1, slots)


def should_retry(attempts_failed_before: int, max_retries: int) -> bool:
    """Whether a candidate whose attempt number ``attempts_failed_before`` (0: the first)
    hit an infrastructure failure gets another one."""
    return attempts_failed_before < max_retries


def ray_system_failure(e: BaseException) -> str | None:
    """A short reason when ``e`` (from ``ray.get``) is an infrastructure failure that says
    nothing about the candidate, else None (an exception of the task itself, a cancel)."""
    kinds = [(rex.NodeDiedError, "node died"),
             (getattr(rex, "OutOfMemoryError", ()), "worker killed by Ray's memory monitor"),
             (rex.WorkerCrashedError, "worker process died"),
             (getattr(rex, "LocalRayletDiedError", ()), "node's raylet died"),
             (rex.ObjectLostError, "object lost"),
             (rex.RaySystemError, "Ray system error")]
    for cls, text in kinds:
        if cls and isinstance(e, cls):
            return text
    return None


def _ray_reason(e: BaseException) -> str:
    if isinstance(e, rex.RayTaskError) and e.cause is not None:
        return failure_reason(e.cause)
    if isinstance(e, rex.RuntimeEnvSetupError):
        return f"Ray could not set up the task's runtime_env: {str(e).strip()[:200]}"
    return failure_reason(e)


def run_ray_task(task: dict, data: Any = None, digest: str | None = None) -> dict:
    """:func:`~nas.evaluate.tasks.run_task` in a Ray task: ``data`` (the bytes of a data set's cache file, from
    the object store) is written once per node as ``<cache>/shipped-<digest>.npz`` and
    becomes the task's ``data.root``; the result names the node it ran on."""
    if data is not None:
        task = {**task, "data": {**task["data"], "root": str(_node_copy(data, digest,
                                                                        task["data"]))}}
    out = run_task(task)
    out["extra"]["node"] = ray.get_runtime_context().get_node_id()
    return out


def _node_copy(data: Any, digest: str | None, data_cfg: Mapping) -> str:
    folder = (os.path.expanduser(data_cfg["cache_dir"]) if data_cfg.get("cache_dir")
              else str(default_cache_dir()))
    path = os.path.join(folder, f"shipped-{digest}.npz")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        # Write then rename: tasks starting together on one node never read half a file.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz.tmp", delete=False) as tmp:
            tmp.write(memoryview(data))
        os.replace(tmp.name, path)
    return path


__all__ = ["RayRunner", "code_runtime_env", "ray_connect", "ray_slots", "ray_system_failure",
           "run_ray_task", "should_retry"]
