"""How often the tracker looks at the result files: soon while calls end, rarely when idle."""

from __future__ import annotations

import pytest

from slurm._client.tracker import next_file_interval


def _waits(quiet_for: float, looks: int = 30) -> list[float]:
    wait, waits = 0.05, []
    for _ in range(looks):
        wait = next_file_interval(wait, changed=False, quiet_for=quiet_for)
        waits.append(wait)
    return waits


def test_a_result_arriving_means_looking_again_at_once() -> None:
    assert next_file_interval(1.0, changed=True, quiet_for=0.0) == 0.05


def test_within_half_a_minute_of_news_the_wait_stays_at_a_quarter_second() -> None:
    waits = _waits(quiet_for=5.0)
    assert waits[0] > 0.05 and waits == sorted(waits)  # backs off from 50 ms...
    assert max(waits) == 0.25  # ...but a short call's end is seen within 250 ms


def test_after_half_a_minute_of_quiet_it_backs_off_to_a_second() -> None:
    assert max(_waits(quiet_for=31.0)) == 1.0
    assert next_file_interval(0.25, changed=False, quiet_for=29.9) == 0.25
    assert next_file_interval(0.25, changed=False, quiet_for=30.0) == 0.375


def test_while_many_calls_are_open_a_result_does_not_make_the_next_look_immediate() -> None:
    # A map of a thousand calls whose results trickle in: each look finds a few, so
    # looking 20 times a second costs the client a look for every result or two.
    assert next_file_interval(0.05, changed=True, quiet_for=0.0, waiting=1000) == 0.25
    assert next_file_interval(0.05, changed=True, quiet_for=0.0, waiting=250) == pytest.approx(0.15)
    # Its last calls are seen as soon as before: the map's end is not delayed.
    assert next_file_interval(0.25, changed=True, quiet_for=0.0, waiting=99) == 0.05
    assert next_file_interval(0.25, changed=True, quiet_for=0.0, waiting=1) == 0.05
