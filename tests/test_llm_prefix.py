"""The embedded engine's choice of the prompt prefix a batch shares (pure logic: no model)."""

from __future__ import annotations

from shopaug.llm.llamacpp import _shared_prefix, _starts_with


def test_one_odd_prompt_does_not_shrink_the_prefix_the_others_share():
    shared = list(range(100))
    prompts = [[*shared, 1000 + i, 2000 + i] for i in range(7)]
    odd = list(range(10)) + [999] * 50  # a different few-shot example after token 10
    prefix = _shared_prefix([*prompts[:3], odd, *prompts[3:]])
    assert prefix == shared
    assert all(_starts_with(p, prefix) for p in prompts) and not _starts_with(odd, prefix)


def test_every_prompt_keeps_a_token_of_its_own():
    prompts = [[1, 2, 3], [1, 2, 3], [1, 2, 3, 4]]
    prefix = _shared_prefix(prompts)
    assert prefix == [1, 2]
    assert all(_starts_with(p, prefix) for p in prompts)


def test_a_batch_with_nothing_in_common_shares_nothing():
    assert _shared_prefix([[1, 2], [3, 4], [5, 6]]) == []
    assert _shared_prefix([]) == []
