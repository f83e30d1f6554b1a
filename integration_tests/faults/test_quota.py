"""Quota pressure: two dozen processes ship at once to a CloudWatch stub that enforces an
account-wide request rate and throttles above it. Every record arrives, and the accepted rate
settles at the quota while the throttled rate stays below it (rather than the processes
hammering the service with retries)."""

from __future__ import annotations

import collections
import json
import statistics
from typing import Any

from faults_proxy import TokenBucket
from faults_support import run_script

PROCESSES = 24
RECORDS = 300  # per process
BATCH = 20  # events per request, so that each process makes 15 requests
RATE = 40.0  # requests per second, for the whole "account"

CHILDREN = """
import logging, multiprocessing, sys
from dagster_logship import CloudWatchHandler
import boto3, botocore.session  # imported once, before the fork: the children start fast

URL, BATCH, RECORDS, PROCESSES = sys.argv[1], *map(int, sys.argv[2:5])

def child(n):
    # Production retry settings (backoff 0.2-20 s with full jitter, deadline 120 s); only the
    # batch size is small, so that there are many requests.
    handler = CloudWatchHandler(
        log_group_name="/quota", log_stream_name=f"p{n}", aws_region="us-east-1",
        endpoint_url=URL, max_batch_size=BATCH, flush_interval=0.05, flush_timeout=120)
    logger = logging.Logger("quota", logging.INFO)
    logger.addHandler(handler)
    for i in range(RECORDS):
        logger.info("record %d", i, extra={"rid": f"{n}-{i}"})
    # returns: the exit hook delivers what is queued

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=child, args=(n,)) for n in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    sys.exit(max(p.exitcode if p.exitcode is not None else 99 for p in procs))
"""


def test_many_processes_settle_at_the_account_quota(proxies: Any, figures: Any,
                                                     no_secrets: Any) -> None:
    stub = proxies(None)  # the proxy is the service: a CloudWatch Logs stub
    stub.quota(TokenBucket(rate=RATE, burst=RATE / 2))
    proc = run_script(CHILDREN, args=[stub.url, str(BATCH), str(RECORDS), str(PROCESSES)],
                      timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_secrets(proc.stdout, proc.stderr)

    expected = {f"{n}-{i}" for n in range(PROCESSES) for i in range(RECORDS)}
    assert set(stub.stored) == expected  # all records arrived
    assert len(stub.stored) == len(expected)  # once each (no answer was lost here)

    puts = stub.log("PutLogEvents")
    accepted = [e for e in puts if e.action == "pass"]
    throttled = [e for e in puts if e.action == "throttle"]
    # Full batches need PROCESSES * RECORDS / BATCH requests. A process that the loaded machine
    # stalls mid-loop for longer than flush_interval sends what it has as a partial batch, so
    # there may be a few more, never fewer; half as many again would mean batching broke.
    fewest = PROCESSES * RECORDS // BATCH
    assert fewest <= len(accepted) <= fewest * 3 // 2, len(accepted)
    start = min(e.t for e in puts)
    per_second: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
    for e in puts:
        per_second[int(e.t - start)][0 if e.action == "pass" else 1] += 1
    # The saturated phase: from the first throttled second to the last one.
    busy = sorted(s for s, (_, t) in per_second.items() if t)
    assert busy, "the quota was never reached: the test does not test anything"
    window = range(busy[0], busy[-1] + 1)
    accepted_rates = [per_second[s][0] for s in window]
    throttled_rates = [per_second[s][1] for s in window]
    # The accepted rate sits at the quota (bursts above it are the bucket's)...
    assert statistics.median(accepted_rates) >= 0.8 * RATE
    assert max(accepted_rates) <= RATE * 1.5 + 1
    # ...and the processes do not hammer it: fewer refusals than acceptances overall.
    ratio = len(throttled) / len(accepted)
    assert ratio < 1.0
    half = len(throttled_rates) // 2
    figures(
        processes=PROCESSES, records=len(expected), quota_rps=RATE,
        accepted=len(accepted), throttled=len(throttled),
        throttled_per_accepted=round(ratio, 2),
        accepted_rps_median=statistics.median(accepted_rates),
        throttled_rps_first_half=round(statistics.mean(throttled_rates[:half] or [0]), 1),
        throttled_rps_second_half=round(statistics.mean(throttled_rates[half:] or [0]), 1),
        per_second=json.dumps({s: per_second[s] for s in sorted(per_second)}),
        seconds=round(max(e.t for e in puts) - start, 1),
    )
