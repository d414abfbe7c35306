"""Human figures per copy: every numerator a subset of its denominator, so no rate passes 100%."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.metrics import (
    NOT_OPENED,
    ONLY_MACHINES,
    OPENED_BY_PERSON,
    CopyState,
    Counts,
    Engagement,
    copy_figures,
    human_rates,
)


def engagement_of(copies: list[CopyState]) -> Engagement:
    f = copy_figures(copies)
    return Engagement(delivered=f.delivered, opened_by_person=f.opened_by_person,
                      only_machines=f.only_machines, not_opened=f.not_opened,
                      bounced_later=f.bounced_later, bounced_after_open=f.bounced_after_open,
                      unique_human_clicks=f.unique_human_clicks)


def test_a_bounce_after_a_person_opened_counts_delivered_and_opened() -> None:
    """Issue 7's report: three copies opened by people, one bounced hard afterwards."""
    copies = [CopyState(OPENED_BY_PERSON, False, False), CopyState(OPENED_BY_PERSON, False, True),
              CopyState(OPENED_BY_PERSON, True, False)]
    f = copy_figures(copies)
    assert (f.delivered, f.opened_by_person, f.bounced_later, f.bounced_after_open) == (3, 3, 1, 1)
    assert human_rates(Counts(sent=3), engagement_of(copies)).estimated_human_open_rate == 1.0


def test_a_bounce_after_machines_only_is_not_delivered() -> None:
    f = copy_figures([CopyState(ONLY_MACHINES, True, False), CopyState(NOT_OPENED, True, False),
                      CopyState(NOT_OPENED, False, False)])
    assert (f.delivered, f.only_machines, f.not_opened, f.bounced_after_open) == (1, 1, 2, 0)


def test_a_human_click_is_a_person_even_before_the_judge_marks_the_copy() -> None:
    f = copy_figures([CopyState(ONLY_MACHINES, True, True)])
    assert (f.delivered, f.opened_by_person, f.only_machines, f.unique_human_clicks) == (1, 1, 0, 1)


copy_states = st.builds(CopyState, st.sampled_from((OPENED_BY_PERSON, ONLY_MACHINES, NOT_OPENED)),
                        st.booleans(), st.booleans())


@given(st.lists(copy_states, max_size=60), st.integers(0, 100))
def test_every_human_rate_is_within_0_and_1(copies: list[CopyState], sent: int) -> None:
    e = engagement_of(copies)
    rates = human_rates(Counts(sent=sent), e)  # whatever Counts says: figures come per copy
    for rate in (rates.estimated_human_open_rate, rates.human_click_rate,
                 rates.human_click_to_open_rate):
        assert rate is None or 0.0 <= rate <= 1.0
    assert e.opened_by_person + e.only_machines + e.not_opened == len(copies)
    assert e.unique_human_clicks <= e.opened_by_person <= e.delivered <= len(copies)
    assert e.bounced_after_open <= e.bounced_later
