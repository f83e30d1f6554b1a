"""Cloud Logging under transient faults, through the real google-cloud-logging REST client and
the fake server, with a fault proxy in between (429 storms, 5xx, resets, stalls past the read
timeout, slow answers) and per-entry transient errors from the server: every record arrives;
an entry arrives twice only when its request reached the service and the answer was lost, and
then both copies carry the same insertId, which the real service collapses."""

from __future__ import annotations

import collections
import logging
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from faults_proxy import Action
from faults_support import FAST

from dagster_logship import GcpHandler
from dagster_logship.sinks import gcp as gcp_sink


def storm(n: int, seed: int) -> list[Action]:
    rng = random.Random(seed)
    kinds = [
        (0.40, Action("throttle")),
        (0.10, Action("error")),
        (0.05, Action("error", status=500)),
        (0.05, Action("reset")),
        (0.06, Action("drop")),
        (0.03, Action("stall", seconds=2.0)),
        (0.06, Action("delay", seconds=0.3)),
    ]
    out = []
    for _ in range(n):
        roll, chosen = rng.random(), Action()
        for weight, action in kinds:
            if roll < weight:
                chosen = action
                break
            roll -= weight
        out.append(chosen)
    return out


def test_storm_of_transient_faults_delivers_everything(
    fresh_gcp_server: Any, proxies: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    no_secrets: Any, figures: Any,
) -> None:
    # Production waits 60 s for an answer; a stalled answer here times out after 1 s.
    monkeypatch.setattr(gcp_sink, "HTTP_TIMEOUT", (2.0, 1.0))
    proxy = proxies(fresh_gcp_server.url, "gcp")
    proxy.script("entries.write", storm(45, seed=7))
    # Behind the proxy, the service itself fails single entries transiently now and then.
    fresh_gcp_server.partial_next(3, {0: "UNAVAILABLE", 5: "RESOURCE_EXHAUSTED", 17: "INTERNAL"})
    spill = tmp_path / "spill.jsonl"
    handler = GcpHandler(
        project="faults", log_name=f"storm-{uuid.uuid4().hex[:6]}", api_endpoint=proxy.url,
        spill_path=str(spill), max_batch_size=100, **FAST,
    )
    logger = logging.Logger("gcp-storm", logging.INFO)
    logger.addHandler(handler)
    sent: set[str] = set()
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = [f"g{t}-{i}" for i in range(500)]
        for rid in mine:
            logger.info("record %s", rid, extra={"rid": rid})
        with lock:
            sent.update(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert handler.flush(120)

    entries = fresh_gcp_server.entries()
    by_rid: dict[str, list[str]] = collections.defaultdict(list)
    for entry in entries:
        by_rid[entry["jsonPayload"]["rid"]].append(entry["insertId"])
    assert set(by_rid) == sent  # 100% delivered
    lost = proxy.lost_answer_ids("entries.write")
    twice = {rid: ids for rid, ids in by_rid.items() if len(ids) > 1}
    for rid, ids in twice.items():
        assert len(set(ids)) == 1, rid  # the same insertId: the service keeps one
        assert ids[0] in lost, rid  # and only where an answer was lost
    assert not spill.exists()
    assert proxy.pending("entries.write") == 0
    assert fresh_gcp_server.pending_faults() == 0
    kinds = collections.Counter(e.action for e in proxy.log("entries.write"))
    assert kinds["throttle"] and kinds["drop"] and kinds["stall"]
    stats = handler.stats
    handler.close()
    figures(records=len(sent), requests=len(proxy.log("entries.write")), faults=dict(kinds),
            delivered_pct=100.0 * len(set(by_rid) & sent) / len(sent),
            duplicates_stored=sum(len(v) - 1 for v in twice.values()),
            duplicates_after_insertid_collapse=0, retried=stats["retried"])


def test_permission_lost_mid_run_spills_and_recovers(
    fresh_gcp_server: Any, proxies: Any, tmp_path: Path, capfd: Any, no_secrets: Any
) -> None:
    proxy = proxies(fresh_gcp_server.url, "gcp")
    spill = tmp_path / "spill.jsonl"
    handler = GcpHandler(project="faults", log_name="perm", api_endpoint=proxy.url,
                         spill_path=str(spill), **FAST)
    logger = logging.Logger("gcp-perm", logging.INFO)
    logger.addHandler(handler)
    for i in range(20):
        logger.info("ok %d", i, extra={"rid": f"ok-{i}"})
    assert handler.flush(30)
    proxy.decide(lambda op, n: Action("auth"))
    for i in range(30):
        logger.info("denied %d", i, extra={"rid": f"denied-{i}"})
    assert handler.flush(30)
    proxy.decide(None)
    for i in range(20):
        logger.info("again %d", i, extra={"rid": f"again-{i}"})
    assert handler.flush(30)
    handler.close()
    stored = {e["jsonPayload"]["rid"] for e in fresh_gcp_server.entries()}
    assert stored == {f"ok-{i}" for i in range(20)} | {f"again-{i}" for i in range(20)}
    from dagster_logship.shipping import read_spill

    assert sorted(e["rid"] for e in read_spill(spill)) == sorted(f"denied-{i}" for i in range(30))
    err = capfd.readouterr().err
    assert sum("PERMISSION_DENIED" in line and "roles/logging.logWriter" in line
               for line in err.splitlines()) == 1
