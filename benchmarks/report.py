"""Merge rounds, compare with baselines and targets, and write RESULTS.md and chart.png."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cases import CASES  # harness.py puts benchmarks/ on sys.path

MiB = 1024 * 1024
X = "\u00d7"  # the multiplication sign of "1.5x"
#: "Peak RSS under an outage bounded by the configured queue bytes plus a small constant": the
#: constant allowed (SDK client and its service model loaded at the first send, thread stacks,
#: the batch being retried, which is outside the queue's accounting).
MEMORY_CONSTANT = 32 * MiB
OURS = ("logship_cw", "logship_gcp", "logship_json")
#: Whom each of our handlers is compared with for throughput.
RIVAL = {"logship_cw": "watchtower", "logship_gcp": "gcl", "logship_json": "dagster_json",
         "dagster_aws": "watchtower"}
TARGET_THROUGHPUT = {"logship_cw": 2.0, "logship_gcp": 5.0}
#: The key suffix of one of our cases measured from ``--compare-src``'s tree ("before").
BEFORE = "@before"


def current(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` without the cases that ``cases.py`` no longer has (older results may hold
    retired ones): the report covers what exists."""
    sections = {s: {c: r for c, r in sec.items() if c in CASES}
                for s, sec in results["sections"].items()}
    return {**results, "sections": sections}


def label(case: str) -> str:
    return CASES.get(case, {}).get("label", case)


# -- merging rounds -------------------------------------------------------------------------------


def merge(section: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if "error" not in r]
    errors = [r for r in results if "error" in r]
    if not ok:
        return {"error": errors[0]["error"], "log": errors[0].get("log")}
    merged: dict[str, Any]
    key = PAIRED.get(section)
    if section in CALLER_SECTIONS:
        reps = [x for r in ok for x in r["reps_ns"]]
        merged = {"ns_per_call": statistics.median(reps),
                  "thread_cpu_ns_per_call": statistics.median(
                      r["thread_cpu_ns_per_call"] for r in ok),
                  "reps_ns": reps, "calls_per_rep": ok[0]["calls_per_rep"][0],
                  "floor_reps_ns": [x for r in ok for x in r.get("floor_reps_ns") or []],
                  "acked": all(r["acked"] for r in ok),
                  **_over_floor(ok, lambda r: zip(r["reps_ns"], r.get("floor_reps_ns") or [],
                                                  strict=False))}
    elif section == "throughput":
        reps = [x for r in ok for x in r["reps"]]
        merged = {"records_per_s": statistics.median(x["records_per_s"] for x in reps),
                  "cpu_us_per_record": statistics.median(x["cpu_us_per_record"] for x in reps),
                  "mb_per_s": (statistics.median(x["mb_per_s"] for x in reps)
                               if all(x.get("mb_per_s") for x in reps) else None),
                  "seconds": statistics.median(x["seconds"] for x in reps),
                  "records": reps[0]["records"], "acked": all(x["acked"] for x in reps),
                  "requests_per_rep": [n for r in ok for n in r["requests_per_rep"]],
                  "events_per_request_backlogged": _mean_of(ok, "events_per_request_backlogged"),
                  "events_per_request_mean": _mean_of(ok, "events_per_request_mean"),
                  "events_per_request_max": max((r["events_per_request_max"] or 0) for r in ok),
                  "fill_backlogged": _mean_of(ok, "fill_backlogged"), "reps": reps}
    elif section == "dagster":
        runs = [x for r in ok for x in r["runs"]]
        merged = {"seconds": statistics.median(x["seconds"] for x in runs),
                  "delivered_seconds": statistics.median(x["delivered_seconds"] for x in runs),
                  "success": all(x["success"] for x in runs),
                  "delivered_min": min((x["delivered"] or 0) for x in runs),
                  "counted": any(x["delivered"] is not None for x in runs), "runs": runs,
                  **_over_floor(ok, lambda r: [(x["seconds"], x["floor_seconds"])
                                               for x in r["runs"] if x.get("floor_seconds")])}
    elif section == "scaling":
        merged = {}
        for threads in ok[0]:
            if not threads.isdigit():
                continue
            vals = [r[threads] for r in ok]
            merged[threads] = {
                "ns_per_call": statistics.median(v["ns_per_call"] for v in vals),
                "records_per_s": statistics.median(v["records_per_s"] for v in vals),
                "acked": all(v["acked"] for v in vals), "records": vals[0]["records"]}
    else:
        merged = dict(ok[0])
    if key is not None and all("round" in r for r in ok):
        merged["by_round"] = {str(r["round"]): _round_figure(section, r) for r in ok}
    if errors:
        merged["errors"] = [e["error"] for e in errors]
    return merged


def _over_floor(ok: list[dict[str, Any]],
                pairs: Callable[[dict[str, Any]], Iterable[tuple[float, float]]]
                ) -> dict[str, Any]:
    """``floor_ratio`` (the median of every repetition's figure over the discarding run beside
    it in the same process) and ``floor_by_round`` (the same per round), from ``pairs`` of
    (figure, floor) of each round's result; nothing when no result has a floor (the baseline
    itself, older results)."""
    per_round = {str(r.get("round")): [x / f for x, f in pairs(r)] for r in ok}
    every = [q for qs in per_round.values() for q in qs]
    if not every:
        return {}
    out: dict[str, Any] = {"floor_ratio": statistics.median(every)}
    if all("round" in r for r in ok):
        out["floor_by_round"] = {k: statistics.median(v) for k, v in per_round.items() if v}
    return out


#: The figure of each section that is compared with a baseline, per round (see ratio()).
PAIRED = {"caller": "ns_per_call", "caller_dagster": "ns_per_call",
          "throughput": "records_per_s", "dagster": "seconds", "memory": "growth_kb"}


def _round_figure(section: str, r: dict[str, Any]) -> float:
    """One round's figure: the median of its repetitions."""
    if section in CALLER_SECTIONS:
        return float(statistics.median(r["reps_ns"]))
    if section == "throughput":
        return float(statistics.median(x["records_per_s"] for x in r["reps"]))
    if section == "memory":
        return float(r["growth_kb"])
    return float(statistics.median(x["seconds"] for x in r["runs"]))


def ratio(section: str, r: dict[str, Any], base: dict[str, Any]) -> float:
    """``r``'s figure over ``base``'s, paired by round: the median of each round's ratio to the
    baseline measured in the same round. Why: rounds interleave the cases minutes apart, and the
    machine's speed drifts by several percent between them (a discarding Dagster job took 3.01 s
    in one round and 2.80 s in the next); pooling all rounds before dividing let that drift decide
    a 5% target. Without per-round figures (older results), the pooled medians. Caller cost
    and the Dagster job are over the discarding handler measured in the same process (see
    measure.caller and measure.dagster), not over the baseline's own processes: that floor
    varied by 10-30% (caller) and ±12% (Dagster job) from process to process."""
    key = PAIRED[section]
    if section in FLOORED and r.get("floor_ratio"):
        # Each repetition over the discarding handler's run beside it in the same process
        # (measure.caller, measure.dagster); two trees: the quotient of their ratios, paired
        # by round.
        mine, theirs = r.get("floor_by_round") or {}, base.get("floor_by_round") or {}
        common = sorted(set(mine) & set(theirs))
        if common:
            return float(statistics.median(mine[k] / theirs[k] for k in common))
        return float(r["floor_ratio"] / (base.get("floor_ratio") or 1.0))
    mine, theirs = r.get("by_round") or {}, base.get("by_round") or {}
    common = sorted(set(mine) & set(theirs))
    if common:
        return float(statistics.median(mine[k] / theirs[k] for k in common))
    return float(r[key] / base[key])


def _mean_of(rs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.mean(vals) if vals else None


def brief(section: str, r: dict[str, Any]) -> str:
    """One line for the progress output."""
    if "error" in r:
        return "error"
    if section in CALLER_SECTIONS:
        return f"{r['ns_per_call'] / 1000:.2f} µs/call"
    if section == "throughput":
        return f"{r['records_per_s']:,.0f} records/s" + ("" if r["acked"] else " (NOT ACKED)")
    if section == "memory":
        return (f"peak {r['peak_rss_kb'] / 1024:.0f} MB, +{r['growth_kb'] / 1024:.0f} MB, "
                f"{r['records_logged']:,} records in {r['seconds']:.1f} s")
    if section == "dagster":
        return f"{r['seconds']:.2f} s per run"
    if section == "scaling":
        return ", ".join(f"{t}T {v['ns_per_call'] / 1000:.1f} µs {v['records_per_s']:,.0f}/s"
                         for t, v in r.items() if t.isdigit())
    if section == "moto":
        return f"{r['stored']}/{r['sent']} stored"
    return ""


# -- targets --------------------------------------------------------------------------------------

#: The caller-cost sections and the record each logs.
CALLER_SECTIONS = {"caller": "%-args record", "caller_dagster": "Dagster record"}
#: Sections whose ratio to the baseline is taken within each measuring process (ratio()).
FLOORED = {*CALLER_SECTIONS, "dagster"}


def _get(results: dict[str, Any], section: str, case: str) -> dict[str, Any] | None:
    r = results["sections"].get(section, {}).get(case)
    return None if (r is None or "error" in r) else r


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for section, record in CALLER_SECTIONS.items():
        null = _get(results, section, "null")
        if null is None:
            continue
        for case in OURS:
            r = _get(results, section, case)
            if r is not None:
                times = ratio(section, r, null)
                rows.append((f"caller cost ({record}), {label(case)} ≤ 1.5{X} NullHandler",
                             f"{times:.2f}{X}", _verdict(times <= 1.5)))
    for case, want in TARGET_THROUGHPUT.items():
        r, b = _get(results, "throughput", case), _get(results, "throughput", RIVAL[case])
        if r is not None and b is not None:
            times = ratio("throughput", r, b)
            rows.append((f"throughput, {label(case)} ≥ {want:g}{X} {label(RIVAL[case])}",
                         f"{times:.2f}{X}", _verdict(times >= want and r["acked"])))
    r = _get(results, "throughput", "logship_cw")
    if r is not None and r.get("fill_backlogged") is not None:
        rows.append((f"PutLogEvents requests ≥ 95% full while backlogged (events or bytes), "
                     f"{label('logship_cw')}",
                     f"{100 * r['fill_backlogged']:.1f}% "
                     f"({r['events_per_request_backlogged']:,.0f} events/request)",
                     _verdict(r["fill_backlogged"] >= 0.95)))
    for case in OURS:
        r = _get(results, "memory", case)
        if r is not None and r.get("queue_max_bytes"):
            bound = r["queue_max_bytes"] + MEMORY_CONSTANT
            growth = r["growth_kb"] * 1024
            rows.append((f"outage memory, {label(case)}: growth ≤ queue_max_bytes "
                         f"({r['queue_max_bytes'] / MiB:.0f} MiB) + {MEMORY_CONSTANT // MiB} MiB",
                         f"+{growth / MiB:.0f} MiB (bound {bound / MiB:.0f} MiB)",
                         _verdict(growth <= bound)))
    d, b = _get(results, "dagster", "logship_cw"), _get(results, "dagster", "null")
    if d is not None and b is not None:
        times = ratio("dagster", d, b)
        rows.append(("Dagster job, cloudwatch_logger within 5% of a discarding logger",
                     f"{100 * (times - 1):+.1f}%", _verdict(times <= 1.05)))
    return rows


# -- before vs after (--compare-src) --------------------------------------------------------------


def _figure(section: str, r: dict[str, Any], null: dict[str, Any] | None) -> str:
    """The figure a target is about, for one tree: what ``compare`` shows before and after."""
    if section in CALLER_SECTIONS:
        vs = f" ({ratio(section, r, null):.2f}{X} NullHandler)" if null else ""
        return _fmt_us(r["ns_per_call"]) + vs
    if section == "dagster":
        vs = f" ({100 * (ratio(section, r, null) - 1):+.1f}%)" if null else ""
        return f"{r['seconds']:.3f} s" + vs
    if section == "memory":
        bound = f" (bound {(r['queue_max_bytes'] + MEMORY_CONSTANT) / MiB:.0f} MiB)" if r.get(
            "queue_max_bytes") else ""
        return f"+{r['growth_kb'] / 1024:,.0f} MiB" + bound
    return f"{r['records_per_s']:,.0f} records/s"


def compare(results: dict[str, Any]) -> list[str]:
    """Our cases measured from two trees in the same rounds: each figure before and after, and
    after/before paired by round (the median of each round's ratio, see ratio())."""
    info = results.get("compare")
    if not info:
        return []
    out = ["", "## Before vs after", "",
           f"Before: `{info['before']['src']}` ({info['before']['commit']}); after: "
           f"`{info['after']['src']}` ({info['after']['commit']}). Each of our cases ran from "
           "both trees back to back in every round, with the baseline in the same rounds. "
           f"In brackets: the target's figure (caller cost ≤ 1.5{X} NullHandler, Dagster job "
           "≤ +5% over the discarding logger, outage growth ≤ the bound). For caller cost, "
           "after/before is the quotient of the two trees' ratios to the NullHandler loop run "
           "in their own processes; for the Dagster job, likewise with the discarding logger's "
           "runs.", "",
           "| section | handler | before | after | after/before (paired by round) |",
           "|---|---|---:|---:|---:|"]
    for section in results["sections"]:
        null = _get(results, section, "null")
        for case in OURS:
            a, b = _get(results, section, case), _get(results, section, case + BEFORE)
            if a is None or b is None or section not in PAIRED:
                continue
            out.append(f"| {section} | {label(case)} | {_figure(section, b, null)} | "
                       f"{_figure(section, a, null)} | {ratio(section, a, b):.3f}{X} |")
    return out


# -- markdown -------------------------------------------------------------------------------------


def _fmt_us(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns < 1e6 else f"{ns / 1e6:,.2f} ms"


def _placement(placement: dict[str, Any] | None) -> str:
    if not placement or not placement.get("servers"):
        return "Servers and clients were not pinned to CPUs (they shared all of them)."
    return (
        f"The loopback servers ran pinned to CPU {placement['servers']}, each measured client "
        f"process to CPU {placement['clients']}: a server's own work does not count against "
        "the client it serves."
    )


def markdown(results: dict[str, Any]) -> str:
    before_after = compare(results)
    results = current(results)
    m = results["machine"]
    lines = ["# dagster-logship benchmarks", ""]
    load = m.get("loadavg_start")
    lines += [
        f"Run {results['started']} ({results['mode']} mode, {results.get('seconds', 0):.0f} s) "
        f"on **{m['cpu']}**, {m['logical_cpus']} logical CPUs, {m.get('memory_gb')} GB RAM, "
        f"{m['implementation']} {m['python']}, {m['os']}. Load average at start "
        f"{_load(load)}, at end {_load(m.get('loadavg_end'))} (other work on the machine "
        "shows up as noise). Commit " + (m.get("commit") or "?") + ".",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        "",
        "Generated by `python3 benchmarks/run.py`; all servers on loopback (see "
        "[benchmarks/README.md](../README.md) for what is measured and how). "
        + _placement(results.get("placement")),
        "",
        "## Targets", "", "| target | measured | result |", "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(results)]
    lines += before_after
    sections = results["sections"]
    if "caller" in sections:
        lines += _caller(sections["caller"])
    if "caller_dagster" in sections:
        lines += _caller(sections["caller_dagster"], dagster_record=True)
    if "throughput" in sections:
        lines += _throughput(sections["throughput"])
    if "memory" in sections:
        lines += _memory(sections["memory"])
    if "dagster" in sections:
        lines += _dagster(sections["dagster"], results["settings"].get("dagster", {}))
    if "scaling" in sections:
        lines += _scaling(sections["scaling"], sections.get("throughput", {}))
    if "moto" in sections:
        lines += ["", "## Sanity check against moto", "",
                  "The CloudWatch clients measured against the stub, sending to a moto server "
                  "and read back with GetLogEvents:", "", "| handler | sent | stored |",
                  "|---|---:|---:|"]
        for case, r in sections["moto"].items():
            if "error" in r:
                lines.append(f"| {label(case)} | error | |")
            else:
                lines.append(f"| {label(case)} | {r['sent']} | {r['stored']} |")
    lines.append("")
    return "\n".join(lines)


def _load(load: Any) -> str:
    return "/".join(f"{x:.1f}" for x in load) if load else "?"


def _err(case: str, r: dict[str, Any], cols: int) -> str:
    return f"| {label(case)} | error: {r.get('error')} (see {r.get('log')}) |" + " |" * (cols - 2)


def _caller(sec: dict[str, Any], dagster_record: bool = False) -> list[str]:
    null = sec.get("null")
    if dagster_record:
        head = ["", "## 1b. Caller cost, the record Dagster hands a `@logger`", "",
                "The same loop with the record our loggers receive inside a Dagster run: "
                "Dagster's log manager has merged the user's message once, passes its composite "
                "line (\"job - run_id - step - message\") with no args, and puts the user's "
                "message in `dagster_meta[\"orig_message\"]` (`DagsterLogHandler.emit`).", ""]
    else:
        head = ["", "## 1. Caller cost: time per `logger.info()`", "",
                "A standalone `logging.Logger` at INFO with one handler; the same "
                "~110-character %-formatted message (four arguments) with Dagster's "
                "`dagster_meta` extra for every handler. Wall time per call in a tight loop, "
                "median of all repetitions, the delivery thread running (its GIL time is part "
                "of what the caller pays); caller-thread CPU beside it.", ""]
    out = [*head,
           f"| handler | per call | {X} NullHandler | caller-thread CPU | calls per rep |",
           "|---|---:|---:|---:|---:|"]
    for case, r in sec.items():
        if "error" in r:
            out.append(_err(case, r, 5))
            continue
        section = "caller_dagster" if dagster_record else "caller"
        times = f"{ratio(section, r, null):.2f}{X}" if null and "error" not in null else ""
        out.append(f"| {label(case)} | {_fmt_us(r['ns_per_call'])} | {times} | "
                   f"{_fmt_us(r['thread_cpu_ns_per_call'])} | {r['calls_per_rep']:,} |")
    return out


def _throughput(sec: dict[str, Any]) -> list[str]:
    out = ["", "## 2. Delivery throughput", "",
           "Records per second from the first emit until the server has acknowledged all of "
           "them (the handler's flush, then the server's count reaching N); one thread logging. "
           "CPU is the whole client process's (all threads) per record. Fill: how full the "
           "requests were while records were backlogged (all but each run's last request), as a "
           "fraction of PutLogEvents' maximum, whichever of 10,000 events or 1,048,576 bytes "
           "(message UTF-8 + 26 per event) a request reaches first. What each client ships per "
           f"record differs: {_sizes(sec)}.", "",
           f"| handler | to | records | records/s | {X} rival | MB/s (CloudWatch-counted) "
           "| CPU per record | events/request (backlogged) | fill | acked |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for case, r in sec.items():
        if "error" in r:
            out.append(_err(case, r, 10))
            continue
        rival = RIVAL.get(case)
        rv = sec.get(rival) if rival else None
        times = (f"{ratio('throughput', r, rv):.2f}{X} {CASES[rival]['owner']}"
                 if rv and "error" not in rv else "—")
        dest = {"stub": "PutLogEvents stub", "gcp": "fake Cloud Logging",
                "": "/dev/null"}[CASES[case]["server"]]
        epr = r.get("events_per_request_backlogged")
        fill = r.get("fill_backlogged")
        out.append(
            f"| {label(case)} | {dest} | {r['records']:,} | {r['records_per_s']:,.0f} | {times} | "
            f"{'' if not r.get('mb_per_s') else format(r['mb_per_s'], '.1f')} | "
            f"{r['cpu_us_per_record']:.1f} µs | {'' if epr is None else f'{epr:,.0f}'} | "
            f"{'' if fill is None else f'{100 * fill:.0f}%'} | {'yes' if r['acked'] else 'NO'} |")
    return out


def _sizes(sec: dict[str, Any]) -> str:
    """Bytes per event each CloudWatch client sent, as CloudWatch counts them, minus the 26."""
    what = {"logship_cw": "the full JSON event schema", "watchtower": "the bare message",
            "dagster_aws": "`json.dumps(record.__dict__)`"}
    parts = []
    for case, text in what.items():
        r = sec.get(case)
        if r and "error" not in r and r.get("mb_per_s"):
            size = r["mb_per_s"] * 1e6 / r["records_per_s"] - 26
            parts.append(f"{CASES[case]['owner']} {text}, ~{size:,.0f} bytes")
    return "; ".join(parts) + (" — so records/s and MB/s tell different stories" if parts else "")


def _memory(sec: dict[str, Any]) -> list[str]:
    null = sec.get("null")
    out = ["", "## 3. Memory while the backend is down", "",
           "Each handler in its own process logs 1,000,000 records (bounded in time) while its "
           "backend refuses connections (CloudWatch, Cloud Logging) or, for JSON lines, while "
           "nobody reads the pipe (a stalled log agent). Before the loop one record is logged and "
           "given time for a first delivery attempt, so that what a first send loads (the SDK, a "
           "client) is in the baseline of every case. Peak RSS is the process's high-water mark "
           "during the loop (reset before it); growth is peak minus RSS before the loop. "
           "Our handlers use `overflow: drop_oldest` here (with the default `block` each call "
           "past a full queue waits 0.5 s); their queue bound is the default 100,000 records / "
           "64 MiB.", "",
           f"| handler | records logged | seconds | peak RSS | growth | {X} NullHandler peak | "
           "what happened |", "|---|---:|---:|---:|---:|---:|---|"]
    for case, r in sec.items():
        if "error" in r:
            out.append(_err(case, r, 7))
            continue
        ratio = (f"{r['peak_rss_kb'] / null['peak_rss_kb']:.2f}{X}"
                 if null and "error" not in null else "")
        out.append(f"| {label(case)} | {r['records_logged']:,} | {r['seconds']:.1f} | "
                   f"{r['peak_rss_kb'] / 1024:,.0f} MB | +{r['growth_kb'] / 1024:,.0f} MB | "
                   f"{ratio} | {_memory_note(case, r)} |")
    return out


def _memory_note(case: str, r: dict[str, Any]) -> str:
    notes = []
    if not r["finished"]:
        notes.append(f"caller stuck: {r['records_logged']:,} of {r['records_wanted']:,} "
                     f"calls returned in {r['seconds']:.0f} s")
    if r.get("errors_raised"):
        notes.append(f"{r['errors_raised']:,} exceptions raised into the caller")
    stats = r.get("handler_stats")
    if stats:
        notes.append(f"queue bound {r['queue_max_records']:,} records / "
                     f"{r['queue_max_bytes'] / MiB:.0f} MiB; dropped {stats['dropped']:,} "
                     "(counted, reported on stderr)")
    if case in ("watchtower", "gcl") and r["finished"]:
        notes.append("unbounded queue" if case == "watchtower"
                     else "unbounded queue; failed batches are dropped")
    return "; ".join(notes)


def _dagster(sec: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    null = sec.get("null")
    n = settings.get("n", 0)
    out = ["", "## 4. In Dagster", "",
           f"Wall time of `execute_in_process` of a one-op job whose op calls `context.log.info` "
           f"{n:,} times, with each logger selected in the run config (in-process executor, one "
           "ephemeral instance per process, the first run of each process not counted). "
           "Until delivered: until the logger's records are acknowledged by the server.", "",
           f"| logger | job wall time | {X} discarding logger | until delivered | records at "
           "server (min) |", "|---|---:|---:|---:|---:|"]
    names = {"null": "discarding logger (NullHandler)", "logship_cw": "logship cloudwatch_logger",
             "logship_gcp": "logship gcp_logger", "logship_json": "logship json_console_logger",
             "watchtower": "@logger with watchtower's handler",
             "dagster_aws": "dagster-aws cloudwatch_logger",
             "gcl": "@logger with google-cloud-logging's handler",
             "dagster_json": "Dagster json_console_logger"}
    for case, r in sec.items():
        if "error" in r:
            out.append(_err(case, r, 5))
            continue
        times = (f"{ratio('dagster', r, null):.3f}{X}" if null and "error" not in null
                 else "")
        counted = f"{r['delivered_min']:,}" if r.get("counted") else "—"
        mark = " ¹" if r.get("errors") else ""
        out.append(f"| {names.get(case, case)}{mark} | {r['seconds']:.3f} s | {times} | "
                   f"{r['delivered_seconds']:.3f} s | {counted} |")
    failed = [(case, r["errors"]) for case, r in sec.items() if r.get("errors")]
    if failed:
        out += [""] + [
            f"¹ {names.get(case, case)}: {len(errors)} of its measuring processes ended with an "
            f"error ({', '.join(errors)}); the figures are those of the others. Their stderr "
            "is kept in `results/logs/` (not committed)."
            for case, errors in failed
        ]
    return out


def _scaling(sec: dict[str, Any], thr: dict[str, Any]) -> list[str]:
    null = sec.get("null", {})
    threads = sorted({t for r in sec.values() for t in r if t.isdigit()}, key=int)
    head = " | ".join(f"{t} thr." for t in threads)
    out = ["", "## 5. How the cost grows with logging threads", "",
           "The same total number of records split over 1, 4 and 16 threads started together. "
           "Caller cost: wall time from the start until every thread returned from its last "
           f"call, per call (all threads together), {X} NullHandler at the same thread count. "
           "Throughput: records per second until acknowledged.", "",
           f"| handler | caller cost: {head} | records/s: {head} |",
           "|---|" + "---:|" * (2 * len(threads))]
    for case, r in sec.items():
        if "error" in r:
            out.append(_err(case, r, 1 + 2 * len(threads)))
            continue
        cost = []
        rate = []
        for t in threads:
            v = r.get(t)
            if not v:
                cost.append("")
                rate.append("")
                continue
            base = null.get(t)
            ratio = f" ({v['ns_per_call'] / base['ns_per_call']:.1f}{X})" if base else ""
            cost.append(f"{_fmt_us(v['ns_per_call'])}{ratio}")
            rate.append(f"{v['records_per_s']:,.0f}" + ("" if v["acked"] else " (not acked)")
                        if case != "null" else "—")
        out.append(f"| {label(case)} | " + " | ".join(cost) + " | " + " | ".join(rate) + " |")
    return out


# -- chart ----------------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sec = current(results)["sections"]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    fig.suptitle(f"dagster-logship benchmarks — {results['machine']['cpu']}, "
                 f"{results['machine']['logical_cpus']} CPUs, Python "
                 f"{results['machine']['python']} ({results['mode']} mode)")

    def bars(ax: Any, data: dict[str, float], title: str, xlabel: str, log: bool = False,
             line: float | None = None) -> None:
        names = list(data)
        colors = ["tab:green" if CASES.get(c, {}).get("owner") == "ours" else
                  ("tab:gray" if c == "null" else "tab:orange") for c in names]
        ax.barh([label(c) for c in names], [data[c] for c in names], color=colors)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_xscale("log")
        if line is not None:
            ax.axvline(line, color="black", linestyle="--", linewidth=1)
        for i, c in enumerate(names):
            value = data[c]
            text = f" {value:,.0f}" if value >= 1000 else f" {value:.3g}"
            ax.text(value, i, text, va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)

    def ok(section: str) -> dict[str, dict[str, Any]]:
        return {c: r for c, r in sec.get(section, {}).items() if "error" not in r}

    caller = ok("caller")
    if "null" in caller:
        bars(axes[0][0], {c: ratio("caller", r, caller["null"]) for c, r in caller.items()},
             f"Caller cost, %-args record ({X} NullHandler, log)", f"{X} NullHandler", log=True,
             line=1.5)
    thr = ok("throughput")
    if thr:
        bars(axes[0][1], {c: r["records_per_s"] for c, r in thr.items()},
             "Delivery throughput (records/s until acknowledged)", "records/s", log=True)
    mem = ok("memory")
    if mem:
        bars(axes[0][2], {c: r["peak_rss_kb"] / 1024 for c, r in mem.items()},
             "Peak RSS, backend down (MB)", "MB")
    dag = ok("dagster")
    if "null" in dag:
        bars(axes[1][0], {c: ratio("dagster", r, dag["null"]) for c, r in dag.items()},
             f"Dagster job wall time ({X} discarding logger)", f"{X}", line=1.05)
    scale = ok("scaling")
    if scale:
        ax1, ax2 = axes[1][1], axes[1][2]
        null = scale.get("null", {})
        for case, r in scale.items():
            ts = sorted((t for t in r if t.isdigit()), key=int)
            if case != "null" and null:
                ax1.plot([int(t) for t in ts],
                         [r[t]["ns_per_call"] / null[t]["ns_per_call"] for t in ts],
                         marker="o", label=label(case))
                ax2.plot([int(t) for t in ts], [r[t]["records_per_s"] for t in ts],
                         marker="o", label=label(case))
        for ax, title in ((ax1, f"Caller cost vs threads ({X} NullHandler)"),
                          (ax2, "Throughput vs threads (records/s)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks([1, 4, 16], ["1", "4", "16"])
            ax.set_xlabel("logging threads")
            ax.set_title(title)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
