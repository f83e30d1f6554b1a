"""The service-independent part of the managers, against a scripted service: a late-listed
event is found again, read errors never raise, completion falls back to the run's end."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from dagster._core.storage.compute_log_manager import ComputeIOType

from dagster_logship.compute_logs.keys import LogKeyFacts
from dagster_logship.compute_logs.manager import ShippingComputeLogManager
from dagster_logship.compute_logs.readback import StreamState


def _event(offset: int, text: str) -> dict[str, Any]:
    return {"offset": offset, "length": len(text) + 1, "message": text, "eol": True}


class Scripted(ShippingComputeLogManager):
    """A service whose listing is scripted: ``listed`` is what a listing from the start
    returns, ``later`` what a listing from a token returns."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(local_dir=str(tmp_path), read_interval=1e-9)
        self.listed: list[dict[str, Any]] = []
        self.later: list[dict[str, Any]] = []
        self.calls: list[Any] = []
        self.fail = False

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    def _handlers(self, log_key: Sequence[str], facts: LogKeyFacts,
                  io_names: Sequence[str]) -> dict[str, logging.Handler]:
        return {name: logging.NullHandler() for name in io_names}

    def _refresh(self, log_key: Sequence[str], io_name: str, state: StreamState) -> None:
        self.calls.append(state.token)
        if self.fail:
            raise ConnectionError("service down")
        for event in self.listed if state.token is None else self.later:
            state.add_event(event)
        state.token = "after-last"

    def _location(self, log_key: Sequence[str], io_name: str) -> str:
        return "scripted"

    def _console_url(self, log_key: Sequence[str], io_name: str) -> str | None:
        return None

    def _delete(self, log_key: Sequence[str] | None, prefix: Sequence[str] | None) -> None:
        raise PermissionError("not allowed")

    def _keys_under(self, prefix: Sequence[str], io_name: str) -> list[list[str]]:
        raise TimeoutError("slow")


KEY = ["run", "compute_logs", "k"]


def test_an_event_listed_late_is_found_by_listing_again_from_the_start(tmp_path: Path) -> None:
    manager = Scripted(tmp_path)
    manager.listed = [_event(0, "one"), _event(8, "three")]  # "two" not listed yet
    assert manager.get_log_data_for_type(KEY, ComputeIOType.STDOUT, 0, None) == (b"one\n", 4)
    manager.listed = [_event(0, "one"), _event(4, "two"), _event(8, "three")]
    assert manager.get_log_data_for_type(KEY, ComputeIOType.STDOUT, 4, None) == (
        b"two\nthree\n", 14)
    assert manager.calls[-2:] == ["after-last", None]  # from the token, then from the start


def test_failures_of_the_service_never_raise(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    manager = Scripted(tmp_path)
    manager.fail = True
    with caplog.at_level(logging.WARNING):
        assert manager.get_log_data(KEY).stdout is None
        assert not manager.is_capture_complete(KEY)
        manager.delete_logs(log_key=KEY)
        assert manager.get_log_keys_for_log_key_prefix(["run"], ComputeIOType.STDOUT) == []
    assert "service down" in caplog.text and "not allowed" in caplog.text
    with pytest.raises(ValueError):
        manager.delete_logs()  # a programming error, as Dagster's managers say


def test_a_capture_of_this_process_is_complete_without_asking(tmp_path: Path) -> None:
    manager = Scripted(tmp_path)
    with manager.open_log_stream(KEY, ComputeIOType.STDERR) as stream:
        assert stream is not None
        stream.write("x\n")
    manager.fail = True
    assert manager.is_capture_complete(KEY)
