"""OCEMOTION cleaning as the 2020 baseline: emoji -> Chinese, bracket runs removed, repeated punctuation collapsed."""
from __future__ import annotations

import pytest

from mtl.cleaning import clean_ocemotion, clean_texts
from mtl.tasks import TASKS


@pytest.mark.parametrize("raw,clean", [
    ("...真的书上写的你听哦...", ".真的书上写的你听哦."),  # the baseline write-up's examples
    ("你说是不是?[生病]", "你说是不是?生病"),
    ("太好笑了😆", "太好笑了斜眼笑"),
    ("[[哈哈]]！！！？？", "哈哈！？"),
    ("好，，，吧。。、、!!", "好，吧。、!"),
    ("没有要清理的", "没有要清理的"),
])
def test_ocemotion_cleaning(raw, clean):
    assert clean_ocemotion(raw) == clean


def test_other_tasks_pass_through_unchanged():
    texts = ["他说...[笑]😆", "！！！"]
    for name in ("ocnli", "tnews"):
        assert clean_texts(TASKS[name].cleaner, texts) == texts
    assert clean_texts(TASKS["ocemotion"].cleaner, texts) == ["他说.笑斜眼笑", "！"]
