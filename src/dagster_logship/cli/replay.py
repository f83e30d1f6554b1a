"""``dagster-logship replay SPILL_FILE``: ship spilled records to a destination, once.

Spill lines are schema events plus a ``logship_spill`` key (why, where to). They are sent with the
destination's own sink, in batches that obey its limits, retrying transient failures up to
``--retry-deadline``. CloudWatch stream templates are filled from each event (``{job_name}``,
``{run_id}``, ``{pid}``, ``{date}`` of the record), so records go back to the stream of their run.

Replaying twice is safe: every record delivered (or refused for good by the service) is written
to a ledger next to the spill file (``SPILL_FILE.replayed``, JSON lines, mode 0600) under a replay
key, and later replays to the same destination skip what the ledger holds. The key is the
record's ``log_message_id`` (with its part index for split messages) or, for records made outside
Dagster, a hash of the whole event numbered by occurrence, so identical records both count.
Cloud Logging also collapses resent entries by insertId (the ``log_message_id``), which covers
a lost ledger for Dagster records; CloudWatch has no such key, so there the ledger is what
prevents duplicates.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._common import CliError, Destination, Output, UsageError, one_line, parse_timestamp
from .tail import add_destination_flags, resolve_destination

__all__ = ["LEDGER_SUFFIX", "add_parser", "replay_key", "run"]

LEDGER_SUFFIX = ".replayed"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="ship spilled records to CloudWatch Logs or Cloud Logging, once",
        description=(
            "Send the records of a spill file (spill_path) to a destination given by a run "
            "config's logger (-c) or by flags. Records already replayed to that destination "
            "(recorded in SPILL_FILE.replayed) are skipped, so running it twice sends nothing "
            "twice. Exit status 0 when every record is delivered or was already."
        ),
    )
    parser.add_argument("spill_file", metavar="SPILL_FILE", help="a spill file (JSON lines)")
    add_destination_flags(parser, stream_flag=True)
    parser.add_argument("--ledger", metavar="PATH",
                        help=f"replay ledger (default SPILL_FILE{LEDGER_SUFFIX})")
    parser.add_argument("--force", action="store_true",
                        help="send again what the ledger says was replayed")
    parser.add_argument("--dry-run", action="store_true", help="count, send nothing")
    parser.add_argument("--retry-deadline", type=float, default=60.0, metavar="SECONDS",
                        help="how long a batch is retried on throttling or 5xx (60)")
    parser.set_defaults(func=run)


# -- keys and ledger ------------------------------------------------------------------------------


def replay_key(event: dict[str, Any], occurrence: int) -> str:
    """The identity of one spilled record across replays (see the module docstring)."""
    message_id = event.get("log_message_id")
    part = event.get("part")
    index = part.get("index") if isinstance(part, dict) else None
    if isinstance(message_id, str) and message_id:
        return f"id:{message_id}" + (f":{index}" if index is not None else "")
    canonical = json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:32]
    return f"sha256:{digest}#{occurrence}"


def _read_ledger(path: str, destination: str) -> dict[str, str]:
    done: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and row.get("destination") == destination:
                    done[str(row.get("key"))] = str(row.get("outcome"))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CliError(f"cannot read the ledger {path} ({exc.strerror})") from None
    return done


class _Ledger:
    def __init__(self, path: str, destination: str) -> None:
        self.path = path
        self.destination = destination

    def add(self, rows: Sequence[tuple[str, str]]) -> None:
        if not rows:
            return
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        text = "".join(
            json.dumps({"key": key, "outcome": outcome, "destination": self.destination,
                        "at": now}) + "\n"
            for key, outcome in rows
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            raise CliError(
                f"cannot write the ledger {self.path} ({exc.strerror}); what was sent so far "
                "is not recorded and would be sent again"
            ) from None


# -- records -------------------------------------------------------------------------------------


@dataclass
class _Record:
    key: str
    event: dict[str, Any]
    timestamp: float
    origin: str


def _load(path: str) -> list[_Record]:
    from ..shipping.spill import SPILL_KEY, read_spill

    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    seen: Counter[str] = Counter()
    records: list[_Record] = []
    try:
        for line in read_spill(path):
            info = line.pop(SPILL_KEY, None)
            origin = info.get("destination") if isinstance(info, dict) else None
            plain = replay_key(line, 0)
            occurrence = seen[plain]
            seen[plain] += 1
            stamp = parse_timestamp(line.get("timestamp"))
            records.append(_Record(
                key=replay_key(line, occurrence), event=line,
                timestamp=stamp if stamp is not None else time.time(),
                origin=str(origin or "unknown"),
            ))
    except OSError as exc:
        raise CliError(f"{path}: cannot read it ({exc.strerror})") from None
    return records


# -- sending -------------------------------------------------------------------------------------


class _Outcome:
    def __init__(self) -> None:
        self.delivered = 0
        self.rejected: Counter[str] = Counter()
        self.failed = 0
        self.failure: str | None = None


def _stream_of(template: str, event: dict[str, Any], timestamp: float) -> str:
    from ..handlers.cloudwatch import fill_stream_template

    values = {
        "job_name": str(event.get("job_name") or "unknown-job"),
        "run_id": str(event.get("run_id") or "no-run"),
        "pid": str(event.get("pid") or os.getpid()),
        "hostname": socket.gethostname() or "localhost",
        "date": datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d"),
    }
    return fill_stream_template(template, values, final=True)


def _sinks(dest: Destination, records: list[_Record]) -> list[tuple[Any, list[_Record]]]:
    """(sink, its records) per concrete destination (CloudWatch: one per stream)."""
    from ..shipping.options import ConfigError

    config = dest.config
    try:
        if dest.kind == "gcp":
            from ..handlers.gcp import GcpHandler
            from ..sinks.gcp import GcpSink

            handler = GcpHandler(**dest.handler_kwargs())
            handler.close()
            return [(GcpSink(handler.target), records)]
        if dest.kind != "cloudwatch":
            raise CliError("replay sends to CloudWatch Logs or Cloud Logging; "
                           f"{dest.logger_name} writes to the process's own output")
        from ..sinks.cloudwatch import CloudWatchSink, validate_log_stream_name
        from ..sinks.endpoint_pin import active_moto_mock

        by_stream: dict[str, list[_Record]] = defaultdict(list)
        for record in records:
            stream = _stream_of(config["log_stream_name"], record.event, record.timestamp)
            by_stream[validate_log_stream_name(stream)].append(record)
        out = []
        for stream, chunk in by_stream.items():
            sink = CloudWatchSink(
                config["log_group_name"], stream,
                aws_region=config.get("aws_region"),
                aws_access_key_id=config.get("aws_access_key_id"),
                aws_secret_access_key=config.get("aws_secret_access_key"),
                aws_session_token=config.get("aws_session_token"),
                aws_profile=config.get("aws_profile"),
                endpoint_url=config.get("endpoint_url"),
                create_log_group=config.get("create_log_group", True),
                create_log_stream=config.get("create_log_stream", True),
                retention_in_days=config.get("retention_in_days"),
                tags=config.get("tags"),
                moto_mock=active_moto_mock(),  # sent now, where the endpoint is now
            )
            out.append((sink, chunk))
        return out
    except ConfigError as exc:
        raise CliError(f"destination: {exc}") from None
    except ImportError as exc:
        raise CliError(f"not installed: {exc}") from None


@dataclass
class _Unit:
    """One event to send: a record, or one part of a record too large for the destination."""

    item: Any
    record: _Record
    key: str


def _units(sink: Any, record: _Record, oversize: str) -> list[_Unit]:
    from ..shipping.encoding import encode, fit_event

    text, size = encode(record.event)
    parts = fit_event(record.event, text, size, sink.limits.max_event_bytes, oversize)
    units = []
    for event, part_text, part_size in parts:
        # An item as the worker makes it (see shipping/sink.py); no snapshot: the event is here.
        item = (part_text, sink.payload(part_text, event, ()), part_size, record.timestamp, 0)
        # A record split here is done when each of its parts is: key the parts apart.
        key = record.key if len(parts) == 1 else f"{record.key}/part{event['part']['index']}"
        units.append(_Unit(item, record, key))
    return units


def _batches(sink: Any, units: list[_Unit]) -> list[list[_Unit]]:
    """Cut units (in time order) into batches within the sink's limits."""
    from ..shipping.sink import SIZE, TIMESTAMP

    limits = sink.limits
    batches: list[list[_Unit]] = []
    batch: list[_Unit] = []
    size = 0
    for unit in sorted(units, key=lambda u: u.item[TIMESTAMP]):
        cost = unit.item[SIZE] + limits.per_event_overhead
        span_ok = limits.max_span_seconds is None or not batch or (
            unit.item[TIMESTAMP] - batch[0].item[TIMESTAMP] <= limits.max_span_seconds)
        if batch and (len(batch) >= limits.max_batch_events
                      or size + cost > limits.max_batch_bytes or not span_ok):
            batches.append(batch)
            batch, size = [], 0
        batch.append(unit)
        size += cost
    if batch:
        batches.append(batch)
    return batches


def _send(sink: Any, batch: list[_Unit], deadline_s: float, outcome: _Outcome,
          ledger: _Ledger) -> bool:
    """Send one batch, retrying what is transient; False when the destination refused it."""
    from ..shipping.retry import BatchRejectedError, RetryableError

    pending = list(batch)
    deadline = time.monotonic() + deadline_s
    backoff = 0.2
    while pending:
        try:
            result = sink.send([unit.item for unit in pending])
        except RetryableError as exc:
            if time.monotonic() + backoff > deadline:
                outcome.failed += len(pending)
                outcome.failure = f"still failing after {deadline_s:g}s: {one_line(str(exc))}"
                return False
            time.sleep(max(exc.retry_after or 0.0, random.uniform(0, backoff)))  # backoff
            backoff = min(backoff * 2, 10.0)
            continue
        except BatchRejectedError as exc:
            outcome.failed += len(pending)
            outcome.failure = exc.diagnostic or exc.reason
            return False
        rejected = dict(result.rejected) if result is not None else {}
        retry = set(result.retry) if result is not None else set()
        done: list[tuple[str, str]] = []
        keep = []
        for index, unit in enumerate(pending):
            if index in retry:
                keep.append(unit)
            elif index in rejected:
                outcome.rejected[rejected[index]] += 1
                done.append((unit.key, "rejected"))
            else:
                outcome.delivered += 1
                done.append((unit.key, "delivered"))
        ledger.add(done)
        pending = keep
        if pending:
            if time.monotonic() + backoff > deadline:
                outcome.failed += len(pending)
                outcome.failure = f"{len(pending)} event(s) still failing after {deadline_s:g}s"
                return False
            time.sleep(random.uniform(0, backoff))  # backoff before resending the failed ones
            backoff = min(backoff * 2, 10.0)
    return True


def run(args: argparse.Namespace, out: Output) -> int:
    if not args.retry_deadline >= 0:
        raise UsageError(f"--retry-deadline must be >= 0 (got {args.retry_deadline:g})")
    dest = resolve_destination(args, out)
    records = _load(args.spill_file)
    ledger_path = args.ledger or args.spill_file + LEDGER_SUFFIX
    where = dest.describe()
    done = {} if args.force else _read_ledger(ledger_path, where)
    oversize = str(dest.config.get("oversize", "split"))
    plan = [(sink, [u for r in chunk for u in _units(sink, r, oversize)])
            for sink, chunk in (_sinks(dest, records) if records else [])]
    total = sum(len(units) for _, units in plan)
    plan = [(sink, [u for u in units if u.key not in done]) for sink, units in plan]
    todo = sum(len(units) for _, units in plan)
    skipped = total - todo
    out.line(f"{args.spill_file}: {len(records)} spilled record(s)"
             + (f", {total} event(s) to send" if total != len(records) else ""))
    for origin, n in Counter(r.origin for r in records).most_common():
        out.line(f"  spilled for {origin}: {n}")
    if skipped:
        out.line(f"  already replayed to this destination (ledger {ledger_path}): {skipped}")
    outcome = _Outcome()
    if args.dry_run:
        out.line(f"dry run: {todo} event(s) would be sent to {where}")
        for sink, _ in plan:
            sink.close()
        return 0
    ledger = _Ledger(ledger_path, where)
    for sink, units in plan:
        try:
            if not outcome.failure:
                for batch in _batches(sink, units):
                    if not _send(sink, batch, args.retry_deadline, outcome, ledger):
                        break
        finally:
            sink.close()
    not_sent = todo - outcome.delivered - sum(outcome.rejected.values())
    out.line(f"replayed to {where}: {outcome.delivered} delivered, "
             f"{sum(outcome.rejected.values())} rejected, {not_sent} not sent, "
             f"{skipped} skipped")
    for reason, n in outcome.rejected.most_common():
        out.line(f"  rejected by the service ({reason}): {n}")
    if outcome.failure:
        out.line(f"  not sent: {outcome.failure}")
        out.line("  run the same command again to send what is left")
    return 0 if not not_sent and not outcome.rejected else 1
