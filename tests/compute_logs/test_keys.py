"""What a Dagster log key says (compute_logs/keys.py)."""

from __future__ import annotations

from dagster_logship.compute_logs.keys import LogKeyFacts, event_id, joined, split_joined


def test_a_step_process_key() -> None:
    facts = LogKeyFacts.of(["r1", "compute_logs", "abcdefgh"], job_name="j", step_keys=["s"])
    assert (facts.run_id, facts.job_name, facts.step_key) == ("r1", "j", "s")
    assert facts.extras() == {}


def test_an_in_process_key_names_all_its_steps_and_no_single_step() -> None:
    facts = LogKeyFacts.of(["r1", "compute_logs", "abcdefgh"], step_keys=["a", "b"])
    assert facts.step_key is None and facts.extras() == {"step_keys": ["a", "b"]}


def test_a_tick_key() -> None:
    facts = LogKeyFacts.of(["repo", "my_sensor", "20260101_120000"])
    assert facts.run_id is None
    assert facts.extras() == {"repository": "repo", "instigator": "my_sensor",
                              "tick": "20260101_120000"}


def test_names_are_safe_for_cloudwatch_and_ids_stable() -> None:
    assert joined(["a:b", "c*d", "{e}"]) == "a-b/c-d/-e-"
    assert split_joined(joined(["r", "compute_logs", "k"])) == ["r", "compute_logs", "k"]
    assert event_id(["r", "x"], "stdout", 5) == event_id(["r", "x"], "stdout", 5)
    assert event_id(["r", "x"], "stdout", 5) != event_id(["r", "x"], "stderr", 5)
