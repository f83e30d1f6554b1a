"""What cannot be delivered is spilled where an operator can find it, never silently lost."""

from __future__ import annotations

import json
import os
import stat

from dagster_logship.shipping import BatchRejectedError, read_spill


def test_spill_goes_to_stderr_when_no_file_is_set(make_handler, sink, capfd):
    sink.script.append(BatchRejectedError("nope"))
    handler, logger = make_handler()
    logger.info("lost?")
    assert handler.flush(5)
    err = capfd.readouterr().err.splitlines()
    spilled = [json.loads(line) for line in err if line.startswith("{")]
    assert [s["message"] for s in spilled] == ["lost?"]
    assert any("spilled 1 record(s) for memory to stderr: nope (1)" in line for line in err)


def test_spill_file_is_private_and_readable_back(make_handler, sink, tmp_path):
    path = tmp_path / "dir" / "spill.jsonl"
    path.parent.mkdir()
    sink.script.extend([BatchRejectedError("denied")] * 2)
    handler, logger = make_handler(spill_path=str(path), max_batch_size=2)
    for i in range(4):
        logger.info("r%d", i, extra={"token_free": True})
    assert handler.flush(5)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = list(read_spill(path))
    assert [e["message"] for e in back] == ["r0", "r1", "r2", "r3"]
    assert all(e["logship_spill"]["reason"] == "denied" for e in back)
    assert handler.stats["spilled"] == 4


def test_unwritable_spill_file_falls_back_to_stderr(make_handler, sink, tmp_path, capfd):
    sink.script.append(BatchRejectedError("denied"))
    handler, logger = make_handler(spill_path=str(tmp_path / "missing-dir" / "spill.jsonl"))
    logger.info("still somewhere")
    assert handler.flush(5)
    err = capfd.readouterr().err
    assert "cannot write spill file" in err
    assert '"message":"still somewhere"' in err
