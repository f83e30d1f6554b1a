"""One measurement of one case, in a fresh process: ``measure.py SECTION CASE --out FILE ...``.

Run by ``harness.py`` (never by CI). Writes one JSON object to ``--out``. Every loop is bounded in
count and in time (``--budget`` seconds per timed phase); what did not finish is reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases

ns = time.perf_counter_ns


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.Logger("bench", level=logging.INFO)  # standalone, as our loggers build it
    logger.addHandler(handler)
    return logger


def _emit(logger: logging.Logger, start: int, count: int, deadline: float,
          log_one: Callable[[logging.Logger, int], None] = cases.log_one) -> int:
    """Log ``count`` records (in chunks, stopping at ``deadline``); return how many were logged."""
    done = 0
    while done < count:
        chunk = min(500, count - done)
        for i in range(start + done, start + done + chunk):
            log_one(logger, i)
        done += chunk
        if time.monotonic() > deadline:
            break
    return done


# -- caller cost ----------------------------------------------------------------------------------


def caller(args: argparse.Namespace, urls: dict[str, str],
           log_one: Callable[[logging.Logger, int], None] = cases.log_one) -> dict[str, Any]:
    """Wall time per call over ``args.reps`` repetitions. Before each repetition, the same loop
    through a NullHandler in this process (``floor_reps_ns``): the floor of the ratio measured
    in the same interpreter, heap and CPU placement, seconds apart. Why: the floor measured in
    separate processes varied by 10-30% between processes on a quiet machine, more than the
    differences this section is read for."""
    built = cases.build(args.case, urls, args.name)
    logger = _logger(built.handler)
    floor = _logger(logging.NullHandler()) if args.case != "null" else None
    total = 0
    warm = max(50, args.n // 10)
    total += _emit(logger, total, warm, time.monotonic() + args.budget, log_one)
    if floor is not None:
        _emit(floor, 0, warm, time.monotonic() + args.budget, log_one)
    built.ack(total, args.ack_timeout)
    wall: list[float] = []
    cpu: list[float] = []
    floor_wall: list[float] = []
    calls: list[int] = []
    acked = True
    for _ in range(args.reps):
        if floor is not None:  # our worker is idle here: the previous repetition was acked
            t0 = ns()
            done = _emit(floor, total, args.n, time.monotonic() + args.budget, log_one)
            floor_wall.append((ns() - t0) / done)
        t0, c0 = ns(), time.thread_time_ns()
        done = _emit(logger, total, args.n, time.monotonic() + args.budget, log_one)
        t1, c1 = ns(), time.thread_time_ns()
        total += done
        wall.append((t1 - t0) / done)
        cpu.append((c1 - c0) / done)
        calls.append(done)
        acked = built.ack(total, args.ack_timeout) and acked  # untimed: next rep starts idle
    return {"ns_per_call": statistics.median(wall),
            "thread_cpu_ns_per_call": statistics.median(cpu),
            "reps_ns": wall, "floor_reps_ns": floor_wall, "calls_per_rep": calls,
            "acked": acked}


# -- delivery throughput --------------------------------------------------------------------------


def throughput(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    built = cases.build(args.case, urls, args.name)
    logger = _logger(built.handler)
    total = _emit(logger, 0, min(1000, args.n), time.monotonic() + args.budget)  # warm: client up
    built.ack(total, args.ack_timeout)
    reps: list[dict[str, Any]] = []
    for _ in range(args.reps):
        before = built.server_stats() or {}
        c0, t0 = time.process_time_ns(), ns()
        done = _emit(logger, total, args.n, time.monotonic() + args.budget)
        t_emit = ns()
        ok = built.ack(total + done, args.ack_timeout)
        t1, c1 = ns(), time.process_time_ns()
        total += done
        after = built.server_stats() or {}
        skip = len(before.get("per_request", []))
        per_request = list(after.get("per_request", []))[skip:]
        per_bytes = list(after.get("bytes_per_request", []))[skip:]
        reps.append({
            "records": done, "acked": ok, "seconds": (t1 - t0) / 1e9,
            "emit_seconds": (t_emit - t0) / 1e9, "records_per_s": done / ((t1 - t0) / 1e9),
            "cpu_us_per_record": (c1 - c0) / 1e3 / done, "per_request": per_request,
            "bytes_per_request": per_bytes,
            "mb_per_s": (sum(per_bytes) / 1e6 / ((t1 - t0) / 1e9)) if per_bytes else None,
        })
    best = sorted(reps, key=lambda r: r["records_per_s"])[len(reps) // 2]  # the median rep
    all_requests = [n for r in reps for n in r["per_request"]]
    return {
        "records_per_s": best["records_per_s"], "seconds": best["seconds"],
        "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in reps),
        "mb_per_s": best["mb_per_s"],
        "records": best["records"], "acked": all(r["acked"] for r in reps),
        "requests_per_rep": [len(r["per_request"]) for r in reps],
        "events_per_request_mean": (statistics.mean(all_requests) if all_requests else None),
        "events_per_request_backlogged": _backlogged_mean(reps),
        "events_per_request_max": max(all_requests) if all_requests else None,
        "fill_backlogged": _fill(reps),
        "reps": [{k: v for k, v in r.items() if k not in ("per_request", "bytes_per_request")}
                 for r in reps],
    }


def _backlogged_mean(reps: list[dict[str, Any]]) -> float | None:
    """Mean events per request while records were backlogged: every request of a rep but its last
    (the last one carries whatever remained when the emitting stopped)."""
    sizes = [n for r in reps for n in r["per_request"][:-1]]
    return statistics.mean(sizes) if sizes else None


#: PutLogEvents' limits: whichever a request reaches first is its maximum.
CW_MAX_EVENTS, CW_MAX_BYTES = 10_000, 1_048_576


def _fill(reps: list[dict[str, Any]]) -> float | None:
    """How full the backlogged requests were, as a fraction of what PutLogEvents allows: for each
    request, max(events / 10,000, counted bytes / 1,048,576) (only the stub counts bytes)."""
    fills = [max(n / CW_MAX_EVENTS, b / CW_MAX_BYTES)
             for r in reps
             for n, b in list(zip(r["per_request"], r["bytes_per_request"], strict=False))[:-1]]
    return statistics.mean(fills) if fills else None


# -- memory under an outage -----------------------------------------------------------------------


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    import gc

    built = cases.build(args.case, urls, args.name, down=True, spill_dir=args.tmp)
    logger = _logger(built.handler)
    # Import what the first send imports, so the baseline RSS has it for every case alike.
    for module in ("boto3", "botocore.client", "google.cloud.logging", "requests"):
        with contextlib.suppress(ImportError):
            __import__(module)
    # One record first, and time for a first delivery attempt: what that loads (a client) is in
    # the baseline, for every case.
    with contextlib.suppress(Exception):  # dagster-aws raises into the caller when it is down
        cases.log_one(logger, -1)
    stats_of = getattr(built.handler, "stats", None)
    deadline = time.monotonic() + (10.0 if isinstance(stats_of, dict) else 1.0)
    while time.monotonic() < deadline:
        stats_now = getattr(built.handler, "stats", None)
        if isinstance(stats_now, dict) and stats_now.get("retried", 0) >= 1:
            break
        time.sleep(0.05)
    gc.collect()
    try:  # reset the high-water mark (Linux >= 4.0), so the peak is the logging loop's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    rss_before = _rss_kb("VmRSS")
    progress = [0]
    errors = [0]
    finished = threading.Event()

    def loop() -> None:
        log_one = cases.log_one
        for i in range(args.n):
            try:
                log_one(logger, i)
            except Exception:  # dagster-aws raises into the caller when the service is down
                errors[0] += 1
            progress[0] = i + 1
        finished.set()

    samples: list[int] = []
    thread = threading.Thread(target=loop, daemon=True)
    t0 = time.monotonic()
    thread.start()
    while not finished.wait(0.05) and time.monotonic() - t0 < args.budget:
        samples.append(_rss_kb("VmRSS"))
    seconds = time.monotonic() - t0
    samples.append(_rss_kb("VmRSS"))
    peak = _rss_kb("VmHWM") if reset else max(samples)
    stats = getattr(built.handler, "stats", None)
    return {
        "records_logged": progress[0], "records_wanted": args.n,
        "finished": finished.is_set(), "seconds": seconds, "errors_raised": errors[0],
        "rss_before_kb": rss_before, "peak_rss_kb": max(peak, max(samples)),
        "growth_kb": max(peak, max(samples)) - rss_before,
        "rss_end_kb": samples[-1],
        "handler_stats": dict(stats) if isinstance(stats, dict) else None,
        "queue_max_bytes": getattr(getattr(built.handler, "options", None), "queue_max_bytes",
                                   None),
        "queue_max_records": getattr(getattr(built.handler, "options", None),
                                     "queue_max_records", None),
    }


# -- in Dagster -----------------------------------------------------------------------------------

_handlers: list[logging.Handler] = []


def _dagster_logger(case: str, urls: dict[str, str], name: str) -> tuple[Any, dict[str, Any]]:
    """The logger definition a user would write for ``case``, and its run config."""
    from dagster import logger

    if case == "null":
        @logger
        def discard(init_context: Any) -> logging.Logger:
            return _logger(logging.NullHandler())
        return discard, {}
    if case == "logship_cw":
        from dagster_logship import cloudwatch_logger
        return cloudwatch_logger, {"log_group_name": cases.GROUP, "log_stream_name": name,
                                   "aws_region": cases.REGION, "endpoint_url": urls["stub"]}
    if case == "logship_gcp":
        from dagster_logship import gcp_logger
        return gcp_logger, {"project": cases.PROJECT, "log_name": name,
                            "api_endpoint": urls["gcp"]}
    if case == "logship_json":
        from dagster_logship import json_console_logger
        return json_console_logger, {}
    if case == "dagster_aws":
        from dagster_aws.cloudwatch import cloudwatch_logger as aws_logger
        # Its logger takes no endpoint: boto3 reads AWS_ENDPOINT_URL_CLOUDWATCH_LOGS (set here).
        os.environ["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = urls["stub"]
        return aws_logger, {"log_group_name": cases.GROUP, "log_stream_name": name,
                            "aws_region": cases.REGION}
    if case == "dagster_json":
        from dagster import json_console_logger as dagster_json
        return dagster_json, {}
    if case in ("watchtower", "gcl"):
        # These libraries ship no Dagster logger: the three lines a user writes.
        @logger
        def wrapped(init_context: Any) -> logging.Logger:
            built = cases.build(case, urls, name)
            _handlers.append(built.handler)
            return _logger(built.handler)
        return wrapped, {}
    raise KeyError(case)


def dagster(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    from dagster import DagsterInstance, job, op

    from dagster_logship import flush_all

    n_logs = args.n

    @op
    def log_op(context):  # type: ignore[no-untyped-def]  # Dagster reads the annotation
        for i in range(n_logs):
            context.log.info(f"processed batch {i} of table orders: {1000 + i % 977} rows")

    devnull = open(os.devnull, "w")  # noqa: SIM115
    instance = DagsterInstance.ephemeral()

    def one_run(case: str, name: str) -> tuple[Any, int, int, int]:
        logger_def, config = _dagster_logger(case, urls, name)

        @job(name="bench_job", logger_defs={"bench": logger_def})
        def bench_job() -> None:
            log_op()

        run_config = {"loggers": {"bench": {"config": config}}}
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = devnull  # the JSON loggers write there
        try:
            t0 = ns()
            result = bench_job.execute_in_process(run_config=run_config, instance=instance,
                                                  raise_on_error=False)
            t1 = ns()
            flush_all(args.ack_timeout)
            for handler in _handlers:
                handler.flush()
            _handlers.clear()
            t2 = ns()
        finally:
            sys.stdout, sys.stderr = saved
        return result, t0, t1, t2

    runs: list[dict[str, Any]] = []
    for rep in range(args.reps + args.warmup):  # warm-up runs: imports, first client
        name = f"{args.name}-{rep}"
        # The discarding logger's run in this process, just before or after this one (the
        # order alternates: the instance's event log grows with every run): the floor of the
        # ratio, as in caller(). Between processes the floor varied by ±12% on a 2-core VM.
        floor = None
        if args.case != "null" and rep % 2:
            floor = one_run("null", f"{name}-floor")
        result, t0, t1, t2 = one_run(args.case, name)
        server = cases.CASES[args.case]["server"]
        delivered = None
        if server:
            built = cases.Built(logging.NullHandler(), lambda t: True, server, name, urls)
            built.ack(n_logs, args.ack_timeout)
            delivered = built.counted()
        t3 = ns()
        if args.case != "null" and not rep % 2:
            floor = one_run("null", f"{name}-floor")
        runs.append({"seconds": (t1 - t0) / 1e9, "delivered_seconds": (t3 - t0) / 1e9,
                     "flush_seconds": (t2 - t1) / 1e9, "success": result.success,
                     "delivered": delivered,
                     "floor_seconds": (floor[2] - floor[1]) / 1e9 if floor else None})
    timed = runs[args.warmup:]
    return {"seconds": statistics.median(r["seconds"] for r in timed),
            "delivered_seconds": statistics.median(r["delivered_seconds"] for r in timed),
            "success": all(r["success"] for r in timed),
            "delivered_min": min((r["delivered"] or 0) for r in timed) if timed else None,
            "runs": timed}


# -- how the cost grows with threads --------------------------------------------------------------


def scaling(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    built = cases.build(args.case, urls, args.name)
    logger = _logger(built.handler)
    total = _emit(logger, 0, min(1000, args.n), time.monotonic() + args.budget)
    built.ack(total, args.ack_timeout)
    out: dict[str, Any] = {}
    for threads in args.threads:
        reps = []
        for _ in range(args.reps):
            per = args.n // threads
            barrier = threading.Barrier(threads + 1)
            counts = [0] * threads
            deadline_box = [0.0]

            def work(k: int, start: int, per: int, barrier: threading.Barrier,
                     counts: list[int], deadline_box: list[float]) -> None:
                barrier.wait()
                counts[k] = _emit(logger, start, per, deadline_box[0])

            pool = [threading.Thread(target=work, daemon=True,
                                     args=(k, total + k * per, per, barrier, counts, deadline_box))
                    for k in range(threads)]
            for t in pool:
                t.start()
            deadline_box[0] = time.monotonic() + args.budget
            t0 = ns()
            barrier.wait()
            for t in pool:
                t.join(args.budget + 60)
            t_emit = ns()
            done = sum(counts)
            ok = built.ack(total + done, args.ack_timeout)
            t1 = ns()
            total += done
            reps.append({"records": done, "acked": ok,
                         "ns_per_call": (t_emit - t0) / done,
                         "records_per_s": done / ((t1 - t0) / 1e9)})
        out[str(threads)] = {
            "ns_per_call": statistics.median(r["ns_per_call"] for r in reps),
            "records_per_s": statistics.median(r["records_per_s"] for r in reps),
            "acked": all(r["acked"] for r in reps), "records": reps[0]["records"],
        }
    return out


# -- sanity: the clients measured against the stub really work against moto -----------------------


def moto_check(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    from dagster_logship.testing import read_raw_events

    client = cases.boto_client(urls["moto"])
    for call, kwargs in (("create_log_group", {"logGroupName": cases.GROUP}),
                         ("create_log_stream", {"logGroupName": cases.GROUP,
                                                "logStreamName": args.name})):
        with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
            getattr(client, call)(**kwargs)
    built = cases.build(args.case, {**urls, "stub": urls["moto"]}, args.name)
    logger = _logger(built.handler)
    done = _emit(logger, 0, args.n, time.monotonic() + args.budget)
    built.flush(args.ack_timeout)
    deadline = time.monotonic() + args.ack_timeout
    stored = 0
    while time.monotonic() < deadline:
        stored = len(read_raw_events(cases.GROUP, args.name, client=client, flush=False))
        if stored >= done:
            break
        time.sleep(0.2)
    return {"sent": done, "stored": stored}


def caller_dagster(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """Caller cost with the record Dagster hands a ``@logger`` (see ``cases.log_dagster``)."""
    return caller(args, urls, cases.log_dagster)


def _where_job() -> Any:
    """The job of :func:`where`, rebuilt by name (``measure._where_job``) in Dagster's children."""
    from dagster import job, op

    @op
    def where_op() -> str:
        import dagster_logship
        return str(dagster_logship.__file__)

    @job
    def where_job() -> None:
        where_op()

    return where_job


def where(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """Which ``dagster_logship`` this process imports, and which a child process of Dagster's
    multiprocess executor imports (``run.py --compare-src`` checks both for each tree)."""
    from dagster import build_reconstructable_job, execute_job, instance_for_test

    import dagster_logship

    with instance_for_test() as instance, execute_job(
            build_reconstructable_job("measure", "_where_job"), instance=instance) as result:
        child = result.output_for_node("where_op") if result.success else None
    return {"process": dagster_logship.__file__, "child": child}


SECTIONS = {"caller": caller, "caller_dagster": caller_dagster, "throughput": throughput,
            "memory": memory, "dagster": dagster, "scaling": scaling, "moto": moto_check,
            "where": where}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("case", choices=sorted(cases.CASES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--stub", default="")
    parser.add_argument("--gcp", default="")
    parser.add_argument("--moto", default="")
    parser.add_argument("--name", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--ack-timeout", type=float, default=120.0)
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 4, 16])
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--warmup", type=int, default=1, help="Dagster runs not counted")
    parser.add_argument("--cpus", default="", help="pin this process to these CPUs (a,b,...)")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    urls = {"stub": args.stub, "gcp": args.gcp, "moto": args.moto}
    for key, value in cases.CREDENTIALS.items():  # fake keys for the loopback endpoints
        os.environ.setdefault(key, value)
    t0 = time.monotonic()
    result = SECTIONS[args.section](args, urls)
    result["wall_seconds"] = time.monotonic() - t0
    with open(args.out, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    os._exit(0)  # skip exit-time flushing of what an outage run still holds


if __name__ == "__main__":
    main()
