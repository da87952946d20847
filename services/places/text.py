"""Chinese text of the gazetteer and of queries: one normal form for both sides.

`normalise()` is what `name_norm`, `address_norm`, `road_norm` and `aliases` hold and what every
query is compared in: Unicode NFKC (full-width digits, letters and punctuation to half-width,
compatibility ideographs to the unified ones), traditional -> simplified (OpenCC's t2s phrase
dictionaries, so 臺灣 -> 台湾 and 乾隆 stays), ASCII lower case, no spaces, no punctuation
(a `-` between digits is kept: 12-3号), and Chinese numerals of a door number after a road
(宏二路十二号 -> 宏二路12号; road names such as 宏二路 keep theirs).

`pinyin_initials()` (pypinyin) fills the `pinyin` column for type-ahead: 杭州市民中心 -> hzsmzx.
`short_name()` strips a division's suffix (浙江省 -> 浙江, 上城区 -> 上城, 广西壮族自治区 ->
广西, 清波街道 -> 清波). `grams()` is the Python twin of the SQL function of indexes.py (the
character unigrams and bigrams that the GIN index holds).

Libraries: opencc (the C++ OpenCC with its own dictionaries: phrase-level and maintained;
zhconv is a smaller pure-Python table, last released 2021), pypinyin (the maintained pinyin
library with phrase data for heteronyms), unicodedata's NFKC for width.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin

__all__ = ["MAX_TEXT", "chinese_number", "door_number_int", "grams", "normalise",
           "pinyin_initials", "short_name"]

MAX_TEXT = 200           # characters of a query (Tianditu's keyWord: 100; the routes: 200)
_T2S = opencc.OpenCC("t2s")
# everything that is not a letter, a digit or an ideograph, except '-' (kept between digits)
_DROP = re.compile(r"[^\w\-]|_", re.UNICODE)
_LONE_DASH = re.compile(r"(?<!\d)-|-(?!\d)")
_DIGITS = "零一二三四五六七八九"
_CN_NUM = re.compile(r"(?<=[路街道巷弄里])([零〇一二两三四五六七八九十百千]+)(?=号)")
_ETHNIC = ("维吾尔", "柯尔克孜", "乌孜别克", "塔吉克", "哈萨克", "达斡尔", "鄂温克", "鄂伦春",
           "俄罗斯", "塔塔尔", "蒙古", "布依", "朝鲜", "土家", "哈尼", "傈僳", "拉祜", "东乡",
           "纳西", "景颇", "仫佬", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "德昂",
           "保安", "裕固", "独龙", "赫哲", "门巴", "珞巴", "基诺", "高山", "回", "藏", "苗", "彝",
           "壮", "满", "侗", "瑶", "白", "傣", "黎", "佤", "畲", "水", "土", "羌", "怒", "京")
_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "自治旗", "民族乡", "街道办事处",
             "街道", "地区", "省", "市", "区", "县", "旗", "盟", "镇", "乡")


def chinese_number(text: str) -> int | None:
    """一百二十三 -> 123, 十二 -> 12, 二〇五 -> 205; None if it is not a numeral."""
    text = text.replace("〇", "零").replace("两", "二")
    if not text or any(c not in _DIGITS + "十百千" for c in text):
        return None
    if not any(c in "十百千" for c in text):
        return int("".join(str(_DIGITS.index(c)) for c in text))
    total, digit = 0, 0
    for c in text:
        if c in _DIGITS:
            digit = _DIGITS.index(c)
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[c]
            total += (digit or 1) * unit
            digit = 0
    return total + digit


def _numerals(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        n = chinese_number(m.group(1))
        return m.group(1) if n is None else str(n)
    return _CN_NUM.sub(repl, text)


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """The normal form of a name, address or query (see the module doc)."""
    text = unicodedata.normalize("NFKC", text)
    text = _T2S.convert(text).lower()
    text = _DROP.sub("", text)
    text = _LONE_DASH.sub("", text)
    return _numerals(text)


def door_number_int(number: str | None) -> int | None:
    """The leading integer of a door number: 12-3号 -> 12, 十二号 -> 12; None without one."""
    if not number:
        return None
    number = normalise(number)
    m = re.match(r"\d+", number)
    if m:
        return int(m.group())
    m = re.match(r"[零〇一二两三四五六七八九十百千]+", number)
    return chinese_number(m.group()) if m else None


def pinyin_initials(text: str) -> str:
    """The initials of a name's pinyin, letters and digits kept: 杭州市民中心 -> hzsmzx."""
    out = []
    for part in lazy_pinyin(normalise(text), style=Style.FIRST_LETTER, errors="default"):
        out.append(part if part.isascii() else "")
    return "".join(out).lower()


def short_name(name: str) -> str:
    """A division's name without its suffix (and ethnic group): 广西壮族自治区 -> 广西; a name
    that would keep fewer than two characters is returned whole (沙市区 -> 沙市, 市辖区)."""
    if name.endswith("市辖区"):
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            stem = name[: -len(suffix)]
            if suffix.startswith(("自治", "民族")):
                changed = True
                while changed:
                    changed = False
                    for group in _ETHNIC:
                        for tail in (group + "族", group):
                            if stem.endswith(tail) and len(stem) - len(tail) >= 2:
                                stem, changed = stem[: -len(tail)], True
                                break
                        if changed:
                            break
            return stem
    return name


def grams(text: str) -> list[str]:
    """Character unigrams and bigrams of a normalised text (what the GIN index holds)."""
    return sorted({*text, *(text[i:i + 2] for i in range(len(text) - 1))})
