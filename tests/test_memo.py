"""``ironroot._memo.Memo``: the bound, the order entries leave in, and concurrent writers."""

from __future__ import annotations

import threading

from ironroot._memo import Memo


def test_put_keeps_at_most_the_limit_oldest_first_out() -> None:
    memo: Memo[int, str] = Memo(3)
    for i in range(5):
        memo.put(i, str(i))
    assert len(memo) == 3
    assert [i in memo for i in range(5)] == [False, False, True, True, True]
    assert memo.get(4) == "4"
    assert memo.get(0) is None


def test_put_of_a_held_key_replaces_its_value_in_its_place() -> None:
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("a", 3)  # not a use: "a" is still the oldest
    memo.put("c", 4)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (None, 2, 4)


def test_refresh_makes_an_entry_the_last_to_go() -> None:
    """A memo whose hits are refreshed drops the least recently used entry first."""
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.refresh("a")
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, None, 3)


def test_refresh_of_a_key_not_held_adds_nothing() -> None:
    memo: Memo[str, int] = Memo(1)
    memo.put("a", 1)
    memo.refresh("gone")
    assert len(memo) == 1
    assert "gone" not in memo
    assert memo.get("a") == 1


def test_update_adds_all_then_trims_to_the_limit() -> None:
    """Several entries go in under one lock; past the limit the oldest go first, which may be
    some of those just added when they alone are more than the limit."""
    memo: Memo[int, int] = Memo(3)
    memo.put(0, 0)
    memo.update({1: 1, 2: 2})
    assert len(memo) == 3
    memo.update({3: 3, 4: 4})
    assert [i in memo for i in range(5)] == [False, False, True, True, True]
    memo.update({i: i for i in range(10, 15)})
    assert sorted(k for k in range(20) if k in memo) == [12, 13, 14]
    memo.update({})
    assert len(memo) == 3


def test_concurrent_writers_and_refreshers_keep_the_bound() -> None:
    memo: Memo[tuple[int, int], int] = Memo(50)
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        for i in range(2000):
            if i % 3 == 0:
                memo.update({(n, i): i, (n, i + 1): i})
            else:
                memo.put((n, i), i)
            memo.refresh((n, i - 7))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memo) == 50


def test_discard_drops_only_its_key_and_a_missing_key_is_no_error() -> None:
    memo: Memo[str, int] = Memo(3)
    memo.update({"a": 1, "b": 2})
    memo.discard("a")
    memo.discard("never")
    assert ("a" in memo, memo.get("b"), len(memo)) == (False, 2, 1)
