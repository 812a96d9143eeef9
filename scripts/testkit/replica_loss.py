"""The replica-loss scenario, written once for the drill, the benchmark and the replicas tier:
readers and writers through nginx while one replica is killed with SIGKILL and started again
(as a supervisor would). It counts what clients saw and checks that every acknowledged write is
still there afterwards. Each caller brings its own stack and says what happens while the
replica is down and after it is back (the tests wait for Prometheus and the alert, the drill
times them, the benchmark only waits)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from testkit import every_book, http, log


def replica_loss(
    base: str,
    kill: Callable[[], None],
    restart: Callable[[], None],
    while_down: Callable[[], None] = lambda: None,
    once_back: Callable[[], None] = lambda: None,
    *,
    readers: int = 4,
    writers: int = 2,
    marker: str = "Replica loss",
    settle: float = 2.0,
) -> dict:
    """Loads `base` (the nginx in front of the replicas) for `settle` seconds, calls `kill`,
    then `while_down`, then `restart`, then `once_back`, keeps the load `settle` seconds more
    and stops it. Every write's title starts with `marker`, which must match no other book: the
    books found by searching for it afterwards are the ones that survived. Returns the reads,
    the failed reads (with their first answers), the writes and the acknowledged writes lost."""
    stop, lock = threading.Event(), threading.Lock()
    counts = {"reads": 0, "writes": 0, "failed_writes": 0}
    failures: list[tuple[int, bytes]] = []
    acknowledged: set[int] = set()

    def reader() -> None:
        while not stop.is_set():
            status, _, body = http("GET", f"{base}/books?limit=5&sort=-id", timeout=10)
            with lock:
                counts["reads"] += 1
                if status != 200:
                    failures.append((status, body[:200]))

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            book = {"title": f"{marker} {n}-{i}", "author": "Replica Loss", "year": 2000}
            status, _, body = http("POST", f"{base}/books", book, timeout=10)
            with lock:
                counts["writes"] += 1
                if status == 201:
                    acknowledged.add(json.loads(body)["id"])
                else:
                    counts["failed_writes"] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(readers + writers) as pool:
        work = [pool.submit(reader) for _ in range(readers)] + [pool.submit(writer, n) for n in range(writers)]
        try:
            time.sleep(settle)
            kill()
            while_down()
            restart()
            once_back()
            time.sleep(settle)
        finally:
            stop.set()
        for done in work:
            done.result()  # a reader or writer that raised fails the scenario
    present = {b["id"] for b in every_book(base, "q=" + marker.lower().replace(" ", "+"))}
    result = {
        **counts,
        "seconds": round(time.monotonic() - started, 1),
        "failed_reads": len(failures),
        "failures": failures,
        "acknowledged_writes": len(acknowledged),
        "lost_writes": len(acknowledged - present),
    }
    log(f"replica loss: {result['reads']:,} reads, {result['failed_reads']} failed; "
        f"{result['acknowledged_writes']:,} writes acknowledged, {result['lost_writes']} lost")
    return result
