"""The campaign contract's status sets: consumers decide "final" from these, not from copies."""

from typing import get_args

from contracts.campaigns import (
    FINAL_CAMPAIGN_STATUSES,
    FINAL_RECIPIENT_STATUSES,
    CampaignStatus,
    RecipientStatus,
)


def test_final_recipient_statuses_are_recipient_statuses_and_leave_out_the_waiting_and_in_flight() -> None:
    assert set(get_args(RecipientStatus)) >= FINAL_RECIPIENT_STATUSES
    assert set(get_args(RecipientStatus)) - FINAL_RECIPIENT_STATUSES == {
        "scheduled",
        "dialing",
        "in_progress",
    }


def test_final_campaign_statuses_are_campaign_statuses_and_leave_out_the_live_ones() -> None:
    assert set(get_args(CampaignStatus)) >= FINAL_CAMPAIGN_STATUSES
    assert set(get_args(CampaignStatus)) - FINAL_CAMPAIGN_STATUSES == {"pending", "running", "paused"}
