"""Chinese text normalisation and address parsing (services.places.text, parse): no database."""

from __future__ import annotations

import pytest

from services.places.parse import Division, Divisions, junction_splits, parse, split_number
from services.places.text import (
    chinese_number,
    door_number_int,
    grams,
    normalise,
    pinyin_initials,
    short_name,
)


@pytest.mark.parametrize(("raw", "norm"), [
    ("浙江省杭州市上城區宏二路２號", "浙江省杭州市上城区宏二路2号"),     # traditional + full width
    ("  杭州 市-上城区，宏二路12-3号！", "杭州市上城区宏二路12-3号"),      # spaces, punctuation
    ("ＡＢＣ　ｈｚ", "abchz"),                                         # full-width letters, space
    ("宏二路十二号", "宏二路12号"),                                      # numerals of a door number
    ("阳湖九路", "阳湖九路"),                                           # ... not of a road name
    ("臺灣", "台湾"),
    ("100%_'; DROP", "100drop"),
])
def test_normalise(raw: str, norm: str) -> None:
    assert normalise(raw) == norm


@pytest.mark.parametrize(("name", "short"), [
    ("浙江省", "浙江"), ("杭州市", "杭州"), ("上城区", "上城"), ("桐庐县", "桐庐"),
    ("清波街道", "清波"), ("广西壮族自治区", "广西"), ("恩施土家族苗族自治州", "恩施"),
    ("香港特别行政区", "香港"), ("沙市区", "沙市"), ("杭州市市辖区", "杭州市市辖区"),
])
def test_short_name(name: str, short: str) -> None:
    assert short_name(name) == short


def test_numbers_pinyin_grams() -> None:
    assert [chinese_number(t) for t in ("十二", "一百零五", "二〇五", "两百", "路")] == \
        [12, 105, 205, 200, None]
    assert [door_number_int(t) for t in ("12-3号", "十二号", "2号", None, "号")] == \
        [12, 12, 2, None, None]
    assert pinyin_initials("杭州市民中心") == "hzsmzx"
    assert grams("西湖区") == sorted(["西", "湖", "区", "西湖", "湖区"])


def _divisions() -> Divisions:
    rows = [("330000", "浙江省", "province", None), ("330100", "杭州市", "city", "330000"),
            ("330102", "上城区", "county", "330100"), ("330106", "西湖区", "county", "330100"),
            ("330102001", "清波街道", "township", "330102"),
            ("330105018", "上塘街道", "township", "330105"),
            ("330105", "拱墅区", "county", "330100"),
            ("350102", "鼓楼区", "county", "350100"), ("320106", "鼓楼区", "county", "320100")]
    return Divisions([Division(code=c, name=n, kind=k, parent_code=p, short_name=short_name(n))
                      for c, n, k, p in rows])


@pytest.mark.parametrize(("text", "admin", "road", "number"), [
    ("浙江省杭州市上城区宏二路2号", ["330000", "330100", "330102"], "宏二路", "2号"),
    ("上城区宏二路2号", ["330102"], "宏二路", "2号"),                  # no prefix
    ("宏二路2号", [], "宏二路", "2号"),
    ("杭州市市上城区区宏二路2号", ["330100", "330102"], "宏二路", "2号"),  # doubled suffixes
    ("浙江杭州上城宏二路12-3号", ["330000", "330100", "330102"], "宏二路", "12-3号"),
    ("上城区清波街道宏二路2号3幢301室", ["330102", "330102001"], "宏二路", "2号"),
])
def test_parse(text: str, admin: list[str], road: str, number: str) -> None:
    p = parse(text, _divisions())
    assert [d.code for d in p.admin] == admin
    assert (p.road, p.number) == (road, number)


def test_parse_keeps_alternatives_and_homonyms() -> None:
    d = _divisions()
    p = parse("西湖大道5号", d)           # 西湖 is also 西湖区's short name
    assert [x.code for x in p.admin] == ["330106"] and "西湖大道5号" in p.alternatives
    p = parse("鼓楼区中山路1号", d)       # two 鼓楼区: both kept as the scope
    assert {x.code for x in p.scope} == {"350102", "320106"}
    p = parse("上城区宏二路2号3幢301室", d)
    assert p.building == "3幢301室" and p.number_int == 2
    assert split_number("宏二路") == ("宏二路", None, None, "")


def test_junction_splits() -> None:
    assert ("宏二路", "宏六路") in junction_splits("宏二路与宏六路交叉口")
    # 和 inside a road name: every position is tried, the query keeps the real roads
    assert ("松和路", "宏二路") in junction_splits("松和路和宏二路路口")
    assert junction_splits("杭州市民中心") == []
    p = parse("上塘高架路与江丰路交叉路口", _divisions())   # 上塘 of 上塘街道 is in the road
    assert ("上塘高架路", "江丰路") in p.junctions
