"""Run every measurement in fresh subprocesses against loopback servers; write the report.

Started by ``run.py`` inside ``benchmarks/.venv`` (see there). Not part of the CI test run.

Servers, each its own process: ``stub.py`` (PutLogEvents), ``fake_gcp.py`` (the project's
FakeCloudLogging, counting), and a moto server (only to check that the CloudWatch clients measured
against the stub deliver to a real implementation of the API).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402

SECTIONS = ("moto", "caller", "caller_dagster", "throughput", "memory", "dagster", "scaling")

#: Which cases each section runs (keys of cases.CASES).
ALL = ["null", "logship_cw", "logship_gcp", "logship_json", "watchtower", "dagster_aws", "gcl",
       "dagster_json"]
CASES_OF = {
    "moto": ["logship_cw", "watchtower", "dagster_aws"],
    "caller": ALL,
    "caller_dagster": ALL,
    "throughput": ["logship_cw", "watchtower", "dagster_aws", "logship_gcp", "gcl",
                   "logship_json", "dagster_json"],
    "memory": ALL,
    "dagster": ALL,
    "scaling": ["null", "logship_cw", "watchtower", "dagster_aws", "logship_gcp", "gcl"],
}

# Sizes. ``slow`` overrides apply to dagster-aws (one blocking PutLogEvents per record, ~1-3 ms on
# loopback) and, for memory, to the handlers that block their caller when the backend stalls.
# "rounds" interleave the cases (A B C .. A B C ..) so that load from elsewhere on the machine
# spreads over all of them; every round is a fresh process.
FULL: dict[str, dict[str, Any]] = {
    "moto": {"n": 100, "budget": 60},
    "caller": {"n": 50_000, "reps": 3, "rounds": 3, "budget": 30,
               "slow": {"n": 1_000}},
    "caller_dagster": {"n": 50_000, "reps": 3, "rounds": 3, "budget": 30,
                       "slow": {"n": 1_000}},
    "throughput": {"n": 100_000, "reps": 1, "rounds": 3, "budget": 120,
                   "slow": {"n": 2_000}},
    "memory": {"n": 1_000_000, "budget": 180, "slow": {"budget": 30}},
    "dagster": {"n": 10_000, "reps": 2, "rounds": 3, "budget": 300,
                "slow": {"reps": 1, "rounds": 2}},
    "scaling": {"n": 32_000, "reps": 3, "rounds": 1, "budget": 60, "threads": "1,4,16",
                "slow": {"n": 800}},
}
QUICK = {
    "moto": {"n": 20, "budget": 20},
    "caller": {"n": 2_000, "reps": 2, "rounds": 1, "budget": 5, "slow": {"n": 50}},
    "caller_dagster": {"n": 2_000, "reps": 2, "rounds": 1, "budget": 5, "slow": {"n": 50}},
    "throughput": {"n": 5_000, "reps": 1, "rounds": 1, "budget": 10, "slow": {"n": 100}},
    "memory": {"n": 50_000, "budget": 4, "slow": {"budget": 1}},
    "dagster": {"n": 200, "reps": 1, "rounds": 1, "budget": 20, "warmup": 0},
    "scaling": {"n": 1_600, "reps": 1, "rounds": 1, "budget": 5, "threads": "1,4,16",
                "slow": {"n": 160}},
}
SLOW = {"memory": {"dagster_aws", "dagster_json"}}


def _settings(mode: dict[str, dict[str, Any]], section: str, case: str) -> dict[str, Any]:
    base = {k: v for k, v in mode[section].items() if k != "slow"}
    slow_cases = SLOW.get(section, {"dagster_aws"})
    if case in slow_cases:
        base.update(mode[section].get("slow", {}))
    return base


def placement(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """CPUs for (servers, measured clients): the last CPU for the loopback servers, the others
    for the client being measured, so that a server parsing a request does not take CPU time
    from the client measured (in production the service runs elsewhere). None: not pinned
    (``--no-pin``, fewer than 2 CPUs, or no ``sched_setaffinity`` on this OS)."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def _start_server(script: str, log: Path,
                  cpus: set[int] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE,
                            stderr=open(log, "w"), text=True)  # noqa: SIM115
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)  # its threads start later: they inherit it
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"{script} did not start: see {log}")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
        physical = psutil.cpu_count(logical=False)
    except Exception:
        mem_gb, physical = None, None
    versions = {}
    for dist in ("dagster-logship", "dagster", "dagster-aws", "watchtower", "boto3", "botocore",
                 "google-cloud-logging", "moto"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "physical_cpus": physical,
        "memory_gb": mem_gb, "python": platform.python_version(),
        "implementation": platform.python_implementation(), "os": platform.platform(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions, "commit": commit + ("+dirty src" if dirty else ""),
    }


def run_one(section: str, case: str, settings: dict[str, Any], urls: dict[str, str],
            name: str, logs: Path, tmp: str, cpus: set[int] | None = None,
            src: str | None = None) -> dict[str, Any]:
    """One measurement in a fresh process; with ``src``, that tree's ``dagster_logship`` (first
    on PYTHONPATH, ahead of the editable install; Dagster's child processes inherit it)."""
    out = Path(tmp) / f"{name}.json"
    env = None if src is None else {
        **os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get(
            "PYTHONPATH")]))}
    cmd = [sys.executable, str(HERE / "measure.py"), section, case, "--out", str(out),
           *([f"--cpus={','.join(map(str, sorted(cpus)))}"] if cpus else []),
           "--name", name, "--n", str(settings["n"]), "--budget", str(settings["budget"]),
           "--reps", str(settings.get("reps", 1)), "--tmp", tmp,
           "--ack-timeout", str(max(30.0, settings["budget"])),
           *(f"--{k}={v}" for k, v in urls.items() if v)]
    if "warmup" in settings:
        cmd.append(f"--warmup={settings['warmup']}")
    if "threads" in settings:
        cmd.append(f"--threads={settings['threads']}")
    # A hard bound on the whole process: its phases are bounded by budget, acks by ack-timeout.
    limit = 120 + settings["budget"] * (settings.get("reps", 1) + 2) * 4
    log = logs / f"{name}.stderr.txt"
    started = time.monotonic()
    with open(log, "w") as err:
        try:
            code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                                  env=env, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-600:]
        print(f"    FAILED ({'timeout' if code == -1 else code}): {tail}", flush=True)
        return {"error": f"exit {code}", "log": str(log)}
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_seconds"] = time.monotonic() - started
    if log.stat().st_size > 2_000_000:  # outage runs of some clients print a traceback per batch
        with open(log, "r+b") as f:
            f.truncate(2_000_000)
    return result


def check_trees(src: str, urls: dict[str, str], logs: Path, tmp: str) -> dict[str, Any]:
    """Which ``dagster_logship`` a measuring process, and a child of Dagster's multiprocess
    executor, import from each tree: ``src``'s for "before", not ``src``'s for "after"."""
    seen = {}
    for tree, tree_src in (("before", src), ("after", None)):
        r = run_one("where", "null", {"n": 0, "budget": 60}, urls, f"where-{tree}", logs, tmp,
                    src=tree_src)
        inside = [Path(r.get(k) or "/").resolve().is_relative_to(src) for k in ("process", "child")]
        print(f"  {tree}: dagster_logship from {r.get('process')} "
              f"(Dagster multiprocess child: {r.get('child')})", flush=True)
        if "error" in r or inside != [tree == "before"] * 2:
            sys.exit(f"--compare-src: the {tree} tree is not the one imported (see {logs})")
        tree_dir = str(Path(r["process"]).parent.parent)
        git = ["git", "-C", tree_dir]
        commit = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "."], capture_output=True,
                               text=True).stdout.strip()
        seen[tree] = {**r, "src": tree_dir,
                      "commit": (commit or "?") + (" + uncommitted changes" if dirty else "")}
    return seen


def render(out: Path) -> None:
    results = json.loads((out / "results.json").read_text())
    (out / "RESULTS.md").write_text(report.markdown(results))
    report.chart(results, out / "chart.png")
    print(f"written: {out / 'RESULTS.md'}, {out / 'chart.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description="dagster-logship benchmarks (see README.md)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--cases", default="",
                        help="comma-separated subset of the cases (default: all)")
    parser.add_argument("--out", default=None, help="results directory")
    parser.add_argument("--render", metavar="DIR", default=None,
                        help="only write RESULTS.md and chart.png again from DIR/results.json")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin servers to the last CPU and clients to the others")
    parser.add_argument("--jobs", type=int, default=None,
                        help="measurements run at once (default: 1; 3 with --quick, whose "
                             "numbers only show that the harness works)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of every section (default: the sizes above); more rounds "
                             "narrow the medians on a machine whose speed drifts")
    parser.add_argument("--compare-src", metavar="SRC", default=None,
                        help="also measure our cases with the dagster_logship of SRC (another "
                             "checkout's src/) in the same rounds, back to back with the "
                             "installed one; report before (SRC) vs after side by side")
    args = parser.parse_args()
    if args.render:
        render(Path(args.render))
        return
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    before = str(Path(args.compare_src).resolve()) if args.compare_src else None
    if before and not (Path(before) / "dagster_logship" / "__init__.py").exists():
        parser.error(f"--compare-src: no dagster_logship package in {before}")
    mode = QUICK if args.quick else FULL
    if args.rounds:
        mode = {s: {**v, "rounds": args.rounds,
                    "slow": {k: x for k, x in v.get("slow", {}).items() if k != "rounds"}}
                for s, v in mode.items()}
    jobs = args.jobs or (3 if args.quick else 1)
    out = Path(args.out) if args.out else HERE / (".quick-results" if args.quick else
                                                  ".compare-results" if before else "results")
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    started = time.time()
    server_cpus, client_cpus = placement(not args.no_pin)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full", "machine": machine(),
        "placement": {"servers": sorted(server_cpus) if server_cpus else None,
                      "clients": sorted(client_cpus) if client_cpus else None},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "settings": {s: mode[s] for s in sections}, "jobs": jobs, "sections": {},
    }
    print(f"benchmarks ({results['mode']}): {', '.join(sections)} -> {out}", flush=True)
    tag = time.strftime("%H%M%S")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        stub, stub_url = _start_server("stub.py", logs / "stub.stderr.txt", server_cpus)
        stack.callback(_stop, stub)
        gcp, gcp_url = _start_server("fake_gcp.py", logs / "fake_gcp.stderr.txt", server_cpus)
        stack.callback(_stop, gcp)
        urls = {"stub": stub_url, "gcp": gcp_url, "moto": ""}
        if before:
            print(f"[compare] before: {before}", flush=True)
            results["compare"] = check_trees(before, urls, logs, tmp)
        if "moto" in sections:
            from dagster_logship.testing import moto_server

            urls["moto"] = stack.enter_context(moto_server())
        for section in sections:
            t_section = time.monotonic()
            print(f"[{section}]", flush=True)
            rounds = max(_settings(mode, section, c).get("rounds", 1) for c in CASES_OF[section])
            # Comparing trees: by default our cases and the baseline only.
            wanted = (set(args.cases.split(",")) if args.cases
                      else set(report.OURS) if before else set(ALL))
            chosen = [c for c in CASES_OF[section] if c in wanted or c == "null"]

            def order(rnd: int, chosen: list[str] = chosen) -> list[str]:
                """Each round starts one case later, so that no case always runs first (a machine
                whose load drifts would otherwise favour or penalize the same case every round);
                with --compare-src each of our cases runs from both trees back to back, before
                first in even rounds and after first in odd ones."""
                turn = chosen[rnd % len(chosen):] + chosen[:rnd % len(chosen)]
                pair = (report.BEFORE, "")[:: 1 if rnd % 2 == 0 else -1]
                return [c + t for c in turn
                        for t in (pair if before and c in report.OURS else ("",))]

            todo = [(rnd, case) for rnd in range(rounds) for case in order(rnd)
                    if rnd < _settings(mode, section, case).get("rounds", 1)]

            def one(item: tuple[int, str], section: str = section,
                    rounds: int = rounds) -> dict[str, Any]:
                rnd, case = item
                t0 = time.monotonic()
                real = case.removesuffix(report.BEFORE)
                result = run_one(section, real, _settings(mode, section, real), urls,
                                 f"{tag}-{section}-{case.replace('@', '-')}-{rnd}", logs, tmp,
                                 client_cpus, before if case != real else None)
                result["round"] = rnd  # ratios pair a case with its baseline round by round
                print(f"  {case:<{20 if before else 13}} round {rnd + 1}/{rounds}: "
                      f"{report.brief(section, result)} ({time.monotonic() - t0:.1f} s)",
                      flush=True)
                return result

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                done = list(pool.map(one, todo))
            merged: dict[str, list[dict[str, Any]]] = {}
            for (_, case), result in zip(todo, done, strict=True):
                merged.setdefault(case, []).append(result)
            results["sections"][section] = {c: report.merge(section, rs)
                                            for c, rs in merged.items()}
            print(f"  ({time.monotonic() - t_section:.0f} s)", flush=True)
    results["seconds"] = time.time() - started
    results["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    markdown = report.markdown(results)
    (out / "RESULTS.md").write_text(markdown)
    chart = report.chart(results, out / "chart.png")
    print()
    print(markdown)
    print(f"written: {out / 'RESULTS.md'}, {out / 'results.json'}"
          + (f", {chart}" if chart else ""))
    print(f"total {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
