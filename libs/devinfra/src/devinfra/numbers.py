"""Fresh phone numbers for tests that dial the ElevenLabs simulator.

The simulator picks a call's outcome by the dialled number's last digit
(`elevenlabs_sim.lifecycle.OUTCOMES`: 0-4 completed, 5 busy, 6 no answer, 7 voicemail, 8 failed,
9 completed without a webhook) and refuses every dial to a number ending in its
`refuse_number_suffix` ("0000" by default: 200 with `success: false`, no conversation). A number
drawn at random with outcome digit 0 ends in "0000" once in 1,000 draws: often enough that a suite
dialling a few hundred of them failed now and then, with a recipient the simulator never rang.
Numbers from here never end in "000" plus the outcome digit, and never repeat within a process.
"""

from __future__ import annotations

import random

#: The simulator's default refusal suffix (`elevenlabs_sim.settings.SimSettings.refuse_number_suffix`).
SIM_REFUSAL_SUFFIX = "0000"

_issued: set[str] = set()


def outcome_number(last_digit: int | str, *, prefix: str = "+1415", rng: random.Random | None = None) -> str:
    """A NANP number `prefix` (country code and area code, e.g. "+1415") + an exchange (200-999,
    valid: it never starts with 0 or 1) + three digits (001-999, never 000) + `last_digit`, which
    picks the simulated outcome. Unique within the process; `rng` for a reproducible draw."""
    digit = str(last_digit)
    if len(digit) != 1 or not digit.isdigit():
        raise ValueError(f"last_digit must be one digit, got {last_digit!r}")
    draw = rng or random.SystemRandom()
    for _ in range(1000):
        number = f"{prefix}{draw.randint(200, 999):03d}{draw.randint(1, 999):03d}{digit}"
        if number not in _issued:
            _issued.add(number)
            return number
    raise RuntimeError(f"no fresh number left under {prefix} ending in {digit}")


def outcome_numbers(digits: list[int] | list[str], *, prefix: str = "+1415") -> list[str]:
    """One fresh `outcome_number` per outcome digit, in order."""
    return [outcome_number(d, prefix=prefix) for d in digits]
