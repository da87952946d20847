"""Opening hours of the offices (issue 15): OSM `opening_hours` syntax, parsed and evaluated by
opening-hours-py (the Rust `opening-hours` crate's binding, a maintained parser of the whole
OSM specification) in the node's time zone (Asia/Shanghai).

Public holidays: the node's `halls.holidays` (config/federation.yml) are appended to every
expression as one `<dates> off` rule, the last rule of an expression overriding the earlier
ones, so "PH off" holds whatever the office's hours say.

`Hours(holidays, timezone, clock)`: `clock` is injectable (tests; `at=` of the API).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from opening_hours import OpeningHours, State

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS_ZH = "一二三四五六日"
MAX_HOURS = 500  # characters of an expression


class HoursError(ValueError):
    """An opening_hours expression the parser refuses (the message is ours, not the parser's)."""


def check(expression: str) -> None:
    """Refuse an expression that does not parse (HoursError)."""
    if not expression.strip() or len(expression) > MAX_HOURS:
        raise HoursError(f"opening_hours is 1 to {MAX_HOURS} characters")
    try:
        OpeningHours(expression)
    except Exception:  # noqa: BLE001 - ParserError, and whatever else the binding raises
        raise HoursError("opening_hours does not parse (OSM opening_hours syntax, e.g. "
                         "'Mo-Fr 09:00-17:00; Sa 09:00-12:00')") from None


def holiday_rule(days: Sequence[dt.date]) -> str:
    """`2026 Oct 01,2026 Oct 02 off`: the days as one rule ('' for none)."""
    if not days:
        return ""
    return ",".join(f"{d.year} {MONTHS[d.month - 1]} {d.day:02d}" for d in sorted(set(days))) \
        + " off"


@dataclass(frozen=True)
class Status:
    open: bool
    next_change: dt.datetime | None   # when it closes (open) or opens (closed), local time
    text: str                         # 营业中，17:00 结束 / 已休息，12月2日（周三）09:00 开始

    def as_dict(self) -> dict[str, object]:
        nxt = self.next_change.isoformat() if self.next_change else None
        return {"open_now": self.open, "closes_at" if self.open else "opens_at": nxt,
                "status": self.text}


class Hours:
    def __init__(self, holidays: Sequence[dt.date] = (), timezone: str = "Asia/Shanghai",
                 clock: Callable[[], dt.datetime] | None = None):
        self.tz = ZoneInfo(timezone)
        self.rule = holiday_rule(holidays)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return self.clock().astimezone(self.tz)

    def status(self, expression: str, at: dt.datetime | None = None) -> Status:
        t = (at or self.now()).astimezone(self.tz)
        oh = _parsed(expression, self.rule, self.tz.key)
        state, _ = oh.state(t)
        nxt = oh.next_change(t)
        is_open = state == State.OPEN
        if nxt is not None:
            nxt = nxt.astimezone(self.tz)
        return Status(is_open, nxt, _text(is_open, t, nxt))


@lru_cache(maxsize=1024)
def _parsed(expression: str, rule: str, tz: str) -> OpeningHours:
    full = f"{expression}; {rule}" if rule else expression
    return OpeningHours(full, timezone=ZoneInfo(tz))


def _text(is_open: bool, t: dt.datetime, nxt: dt.datetime | None) -> str:
    if nxt is None:
        return "全天营业" if is_open else "暂停服务"
    when = f"{nxt:%H:%M}"
    if nxt.date() != t.date():
        day = "明天" if nxt.date() == t.date() + dt.timedelta(days=1) else \
            f"{nxt.month}月{nxt.day}日（周{WEEKDAYS_ZH[nxt.weekday()]}）"
        when = f"{day} {when}"
    return f"营业中，{when} 结束" if is_open else f"已休息，{when} 开始"
