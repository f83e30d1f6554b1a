"""CloudWatch Logs under transient faults, through real boto3 and a moto server process, with a
fault proxy in between: every record is delivered; a record arrives twice only when the service
accepted its batch and the answer was lost (a reset after acceptance, a read timeout), and the
duplicate is identifiable by its id. Also: the log group and stream deleted mid-run, and
credentials that stop working mid-run (spilled, then replayed with the CLI)."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from faults_proxy import Action, FaultProxy
from faults_support import FAST, SECRETS, duplicates, jsonl, moto_events

from dagster_logship import CloudWatchHandler
from dagster_logship.sinks.cloudwatch import CloudWatchSink

REGION = "us-east-1"


def make_handler(proxy: FaultProxy, group: str, spill: Path, **options: Any) -> CloudWatchHandler:
    """A handler with explicit (fake) keys and a 1 s read timeout, shipping through ``proxy``."""
    settings = {**FAST, **options}
    handler = CloudWatchHandler(
        log_group_name=group, log_stream_name="s", aws_region=REGION, endpoint_url=proxy.url,
        aws_access_key_id=SECRETS["access_key"], aws_secret_access_key=SECRETS["secret_key"],
        aws_session_token=SECRETS["token"], spill_path=str(spill), **settings,
    )
    worker = handler.worker
    assert worker is not None and isinstance(worker.sink, CloudWatchSink)
    # Production waits 20 s for an answer; a stalled answer here times out after 1 s (the
    # client is built on the first send, after this).
    worker.sink.read_timeout = 1.0
    return handler


def storm(n: int, seed: int) -> list[Action]:
    """A throttling storm with 5xx bursts, resets, lost answers, stalls and slow answers."""
    rng = random.Random(seed)
    kinds = [
        (0.40, Action("throttle")),
        (0.10, Action("error")),
        (0.03, Action("error", status=500, code="InternalFailure")),
        (0.05, Action("reset")),
        (0.06, Action("drop")),
        (0.02, Action("stall", seconds=2.0)),
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


def log_from_threads(logger: logging.Logger, threads: int, per_thread: int) -> set[str]:
    ids: set[str] = set()
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = [f"t{t}-{i}" for i in range(per_thread)]
        for rid in mine:
            logger.info("record %s", rid, extra={"rid": rid})
        with lock:
            ids.update(mine)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    return ids


def test_storm_of_transient_faults_delivers_everything(
    moto_endpoint: str, proxies: Any, tmp_path: Path, no_secrets: Any, figures: Any
) -> None:
    proxy = proxies(moto_endpoint)
    proxy.script("CreateLogStream", [Action("throttle"), Action("reset")])
    proxy.script("CreateLogGroup", [Action("error")])
    plan = storm(45, seed=6)
    proxy.script("PutLogEvents", plan)
    group = f"/faults/storm/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    handler = make_handler(proxy, group, spill, max_batch_size=100)
    logger = logging.Logger("storm", logging.INFO)
    logger.addHandler(handler)

    sent = log_from_threads(logger, threads=4, per_thread=500)
    assert handler.flush(120)

    accepted = proxy.accepted_ids()
    assert set(accepted) == sent  # 100% delivered (as the service saw it)
    lost_answers = proxy.lost_answer_ids()
    dups = duplicates(accepted)
    assert set(dups) <= lost_answers  # a duplicate only where an answer was lost
    stored = [e["rid"] for e in moto_events(moto_endpoint, group, "s")]
    assert set(stored) == sent
    assert set(duplicates(stored)) <= lost_answers
    assert not spill.exists()
    assert proxy.pending("PutLogEvents") == 0  # the whole storm was played
    stats = handler.stats
    assert stats["spilled"] == 0 and stats["dropped"] == 0
    kinds = Counter(e.action for e in proxy.log("PutLogEvents"))
    assert kinds["throttle"] and kinds["drop"] and kinds["stall"] and kinds["reset"]
    handler.close()
    figures(records=len(sent), requests=len(proxy.log("PutLogEvents")), faults=dict(kinds),
            delivered_pct=100.0 * len(set(stored) & sent) / len(sent),
            duplicates=sum(n - 1 for n in duplicates(stored).values()),
            lost_answer_batches=sum(e.answer_lost for e in proxy.log("PutLogEvents")),
            retried=stats["retried"])


def test_group_and_stream_deleted_mid_run(
    moto_endpoint: str, proxies: Any, tmp_path: Path, no_secrets: Any, ns: Any
) -> None:
    """Deleted while records flow: the sink creates them again and resends; nothing lost."""
    proxy = proxies(moto_endpoint)
    group = f"/faults/deleted/{uuid.uuid4().hex[:8]}"
    handler = make_handler(proxy, group, tmp_path / "spill.jsonl", max_batch_size=20,
                           flush_interval=0.01)
    logger = logging.Logger("deleted", logging.INFO)
    logger.addHandler(handler)
    client = ns.cw_client(moto_endpoint, REGION)
    stop = threading.Event()
    sent: list[str] = []

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 1_500:
            rid = f"d-{i}"
            logger.info("record %s", rid, extra={"rid": rid})
            sent.append(rid)
            i += 1
            if i % 20 == 0:
                stop.wait(0.02)  # a steady flow, so that the deletions land mid-stream

    def accepted(n: int) -> bool:
        return proxy.wait(lambda ex: sum(e.accepted and e.op == "PutLogEvents" for e in ex) >= n,
                          timeout=30)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert accepted(5)
        client.delete_log_stream(logGroupName=group, logStreamName="s")
        assert accepted(15)
        client.delete_log_group(logGroupName=group)
        assert accepted(25)
    finally:
        stop.set()
        producer.join(30)
    assert handler.flush(60)
    assert set(proxy.accepted_ids()) == set(sent)
    assert not duplicates(proxy.accepted_ids())  # no answer was lost: no duplicate at all
    ops = Counter(e.op for e in proxy.log())
    assert ops["CreateLogGroup"] >= 2 and ops["CreateLogStream"] >= 3  # made again, twice
    not_found = [e for e in proxy.log("PutLogEvents") if e.client_status == 400]
    assert not_found  # ResourceNotFoundException answers were met and overcome
    assert not (tmp_path / "spill.jsonl").exists()
    handler.close()


def test_credentials_stop_working_mid_run_then_replay(
    moto_endpoint: str, proxies: Any, tmp_path: Path, capfd: Any, no_secrets: Any
) -> None:
    """Rejected credentials are not retried: the records are spilled with one diagnostic, the
    op never sees an exception, and `dagster-logship replay` delivers them later."""
    proxy = proxies(moto_endpoint)
    group = f"/faults/creds/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    handler = make_handler(proxy, group, spill)
    logger = logging.Logger("creds", logging.INFO)
    logger.addHandler(handler)

    for i in range(50):
        logger.info("before %d", i, extra={"rid": f"before-{i}"})
    assert handler.flush(30)
    # The keys are revoked (or the session token expires): every call is refused from now on,
    # and the service's answer even echoes the credentials back (none may reach any output).
    echo = f"key {SECRETS['access_key']} / {SECRETS['secret_key']} / {SECRETS['token']}"
    proxy.decide(lambda op, n: Action(
        "auth", code="ExpiredTokenException" if n % 2 else "UnrecognizedClientException",
        message=f"The security token included in the request is invalid ({echo})"))
    for i in range(120):
        logger.info("during %d", i, extra={"rid": f"during-{i}"})
    assert handler.flush(30)
    proxy.decide(None)  # rotated: working again
    for i in range(50):
        logger.info("after %d", i, extra={"rid": f"after-{i}"})
    assert handler.flush(30)
    handler.close()

    err = capfd.readouterr().err
    spilled = jsonl(spill)
    assert sorted(line["rid"] for line in spilled) == sorted(f"during-{i}" for i in range(120))
    assert {line["logship_spill"]["reason"].split(" (")[0] for line in spilled} == {
        "credentials rejected"
    }
    diagnostics = [line for line in err.splitlines() if "rejected the credentials" in line]
    assert 1 <= len(diagnostics) <= 2  # once per distinct cause, not once per batch
    assert "logs:PutLogEvents" in diagnostics[0]
    assert "spilled" in err
    accepted = set(proxy.accepted_ids())
    assert {f"before-{i}" for i in range(50)} | {f"after-{i}" for i in range(50)} <= accepted
    assert not any(rid.startswith("during") for rid in accepted)

    replay = subprocess.run(
        [sys.executable, "-m", "dagster_logship.cli", "replay", str(spill), "--kind",
         "cloudwatch", "--log-group", group, "--log-stream", "s", "--region", REGION,
         "--endpoint-url", moto_endpoint],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    stored = [e["rid"] for e in moto_events(moto_endpoint, group, "s")]
    assert Counter(stored) == Counter(
        [f"before-{i}" for i in range(50)] + [f"during-{i}" for i in range(120)]
        + [f"after-{i}" for i in range(50)]
    )
    no_secrets(replay.stdout, replay.stderr, err)
