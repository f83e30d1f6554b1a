"""Records made while the layer sends never come back to it: no recursion, no deadlock."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def root_captured(make_handler):
    """Our handler on the root logger at DEBUG, as when Dagster captures the root logger."""
    handler, _ = make_handler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_sdk_logs_made_while_sending_are_not_shipped(root_captured, sink):
    def chatty_send(items):
        # what botocore / urllib3 / google-auth do on every request
        logging.getLogger("botocore.endpoint").debug("Sending http request: %s", items[0].text)
        logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
        logging.getLogger().warning("root warning from the sending thread")

    sink.on_send = chatty_send
    for i in range(20):
        logging.getLogger("user.code").info("user %d", i)
    assert root_captured.flush(5)
    assert sink.messages() == [f"user {i}" for i in range(20)]
    stats = root_captured.stats
    assert stats["delivered"] == 20
    assert stats["suppressed"] == 3 * len(sink.calls)


def test_a_handler_that_logs_from_emit_does_not_deadlock(root_captured, sink):
    class Noisy(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.name != "noisy.inner":
                logging.getLogger("noisy.inner").debug("filtering %s", record.getMessage())
            return True

    root_captured.addFilter(Noisy())
    logging.getLogger("user").info("hello")
    assert root_captured.flush(5)
    assert sorted(sink.messages()) == ["filtering hello", "hello"]
