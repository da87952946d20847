"""Opening hours of the offices (issue 15): OSM `opening_hours` syntax, parsed and evaluated by
opening-hours-py (the Rust `opening-hours` crate's binding, a maintained parser of the whole
OSM specification) in the node's time zone (Asia/Shanghai).

Public holidays: the node's `halls.holidays` (config/federation.yml) are appended to every
expression as one `<dates> off` rule, the last rule of an expression overriding the earlier
ones, so "PH off" holds whatever the office's hours say. Make-up working days (调休上班日: the
weekend days the State Council's notice makes working days, `halls.workdays`) follow each
office's hours of its last regular working day before them (a weekday that is no holiday), as
one `<date> <times>` rule per day after the holiday rule.

`Hours(holidays, timezone, clock, workdays)`: `clock` is injectable (tests; `at=` of the API).
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
                 clock: Callable[[], dt.datetime] | None = None,
                 workdays: Sequence[dt.date] = ()):
        self.tz = ZoneInfo(timezone)
        self.rule = holiday_rule(holidays)
        self.workdays = tuple((d, _reference_day(d, set(holidays)))
                              for d in sorted(set(workdays) - set(holidays)))
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return self.clock().astimezone(self.tz)

    def status(self, expression: str, at: dt.datetime | None = None) -> Status:
        t = (at or self.now()).astimezone(self.tz)
        oh = _parsed(expression, self.rule, self.tz.key, self.workdays)
        state, _ = oh.state(t)
        nxt = oh.next_change(t)
        is_open = state == State.OPEN
        if nxt is not None:
            nxt = nxt.astimezone(self.tz)
        return Status(is_open, nxt, _text(is_open, t, nxt))


def _reference_day(day: dt.date, holidays: set[dt.date]) -> dt.date:
    """The last regular working day (Monday to Friday, no holiday) before `day`."""
    ref = day - dt.timedelta(days=1)
    while ref.weekday() > 4 or ref in holidays:
        ref -= dt.timedelta(days=1)
    return ref


def _day_rule(oh: OpeningHours, day: dt.date, like: dt.date, tz: ZoneInfo) -> str:
    """`2026 Jan 04 09:00-12:00,13:30-17:00`: on `day`, the hours `oh` gives on `like`."""
    start = dt.datetime.combine(like, dt.time(), tzinfo=tz)
    spans = [f"{a:%H:%M}-{'24:00' if b.date() > like else f'{b:%H:%M}'}"
             for a, b, state, _ in oh.intervals(start, start + dt.timedelta(days=1))
             if state == State.OPEN]
    return f"{day.year} {MONTHS[day.month - 1]} {day.day:02d} " + (",".join(spans) or "off")


@lru_cache(maxsize=1024)
def _parsed(expression: str, rule: str, tz: str,
            workdays: tuple[tuple[dt.date, dt.date], ...] = ()) -> OpeningHours:
    full = f"{expression}; {rule}" if rule else expression
    zone = ZoneInfo(tz)
    if workdays:
        regular = OpeningHours(full, timezone=zone)
        full += "".join(f"; {_day_rule(regular, d, like, zone)}" for d, like in workdays)
    return OpeningHours(full, timezone=zone)


def _text(is_open: bool, t: dt.datetime, nxt: dt.datetime | None) -> str:
    if nxt is None:
        return "全天营业" if is_open else "暂停服务"
    when = f"{nxt:%H:%M}"
    if nxt.date() != t.date():
        day = "明天" if nxt.date() == t.date() + dt.timedelta(days=1) else \
            f"{nxt.month}月{nxt.day}日（周{WEEKDAYS_ZH[nxt.weekday()]}）"
        when = f"{day} {when}"
    return f"营业中，{when} 结束" if is_open else f"已休息，{when} 开始"
