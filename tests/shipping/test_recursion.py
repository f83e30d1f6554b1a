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
    # Records of other loggers made on the sending thread reach emit and are refused there
    # (the root warning, once per send); the SDKs' own are dropped before any handler sees
    # them once their loggers are known to the worker (see shipping/recursion.py).
    assert len(sink.calls) <= stats["suppressed"] <= 3 * len(sink.calls)


def test_sdk_records_made_while_sending_reach_no_handler_at_all(root_captured, sink):
    """Other handlers (Dagster's, capturing root at DEBUG) must not get them either: botocore
    logs request headers, the session token among them, at DEBUG."""
    seen: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.name)

    spy = Spy(logging.DEBUG)
    logging.getLogger().addHandler(spy)
    try:
        logging.getLogger("botocore.endpoint")  # an SDK imported before we send, as usual
        sink.on_send = lambda items: logging.getLogger("botocore.endpoint").debug(
            "Sending http request: <headers X-Amz-Security-Token: ...>"
        )
        logging.getLogger("user.code").info("user")
        assert root_captured.flush(5)
        logging.getLogger("botocore.endpoint").debug("from the application's own thread")
    finally:
        logging.getLogger().removeHandler(spy)
    assert sink.messages() == ["user"]
    assert seen.count("botocore.endpoint") == 1  # only the application's own record


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
