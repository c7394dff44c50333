"""Where a batch's flags are computed: a helper process or thread beside the featuriser (infrastructure
below the scoring service; same function, same results wherever it runs)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

from scoring import flags as flagging

log = logging.getLogger(__name__)

OVERLAP_MIN_BATCH = 64
_helper_pool: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()

# The featuriser holds the GIL for most of its work, so flags computed on another *thread* do not run in
# parallel with it (measured: a 1,000-answer batch took featuriser + flags, 40 + 20 ms, even on idle
# cores).  Batches of PROCESS_MIN_BATCH answers or more have their flags computed in one helper
# *process* per web/worker process (spawned, started in the background at the first large batch, which
# still uses this process), while this process featurises: about 40 ms per 1,000 answers instead of 60.
# Where a child process cannot be had (a daemonic process such as a Celery prefork child, or a broken
# pool), the flags are computed here as before.  Same function, same results.
PROCESS_MIN_BATCH = 256
_flag_pool: ProcessPoolExecutor | None = None
_flag_pool_ready: Future | None = None
_flag_pool_failed = False


def process() -> ProcessPoolExecutor | None:
    """The helper process for flags, once it has started; None until then or where none can be had."""
    global _flag_pool, _flag_pool_ready, _flag_pool_failed
    if _flag_pool_ready is not None and _flag_pool_ready.done() and not _flag_pool_failed:
        return _flag_pool
    with _helper_lock:
        if _flag_pool is None and not _flag_pool_failed:
            try:
                if multiprocessing.current_process().daemon:
                    raise RuntimeError("a daemonic process cannot have children")
                _flag_pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
                _flag_pool_ready = _flag_pool.submit(flagging.check_batch, ["warm up"], "question", "en")
            except Exception as exc:  # any failure: flags stay in this process
                log.info("flags stay in process: %s", exc)
                _flag_pool_failed = True
    return None


def submit(responses: Sequence[str], question, language: str) -> Future | None:
    pool = process() if len(responses) >= PROCESS_MIN_BATCH else None
    if pool is None:
        return None
    try:
        return pool.submit(flagging.check_batch, list(responses),
                           question if isinstance(question, str) else list(question), language)
    except Exception as exc:  # a broken pool: give up on it
        give_up(exc)
        return None


def give_up(exc: BaseException) -> None:
    global _flag_pool_failed
    log.warning("flags helper process unusable, computing flags in process: %r", exc)
    _flag_pool_failed = True


def thread_pool() -> ThreadPoolExecutor:
    global _helper_pool
    if _helper_pool is None:
        with _helper_lock:
            if _helper_pool is None:
                _helper_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kdgrade-score")
    return _helper_pool


