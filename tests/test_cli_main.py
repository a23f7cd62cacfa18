from __future__ import annotations

import pytest

from ironroot.cli import main


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_group_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-group"])
    assert info.value.code == 2
