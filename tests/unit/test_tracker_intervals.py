"""How often the tracker looks at the result files: soon while calls end, rarely when idle."""

from __future__ import annotations

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
