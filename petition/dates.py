"""Closing dates: organisers pick a day; the letter closes when that day ends, UK time."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_TIME = ZoneInfo("Europe/London")
_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)  # "٢٠٢٧" is not a year here


class NotADay(ValueError):
    """Not written as YYYY-MM-DD."""


class NoSuchDay(ValueError):
    """Written as YYYY-MM-DD, but the calendar has no such day (2027-02-30)."""


def parse_day(text: str) -> date:
    """A day written YYYY-MM-DD, the form a date input sends and the CLI takes."""
    match = _DAY.fullmatch(text.strip())
    if match is None:
        raise NotADay(text)
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise NoSuchDay(text) from None


def end_of_day(day: date) -> datetime:
    """Midnight at the end of `day`, UK time: a letter "closing on the 5th" takes the 5th."""
    if day == date.max:  # no next day to begin: its last instant, which rules then refuse
        return datetime.max.replace(tzinfo=LOCAL_TIME)
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=LOCAL_TIME)


def closing_day(closes_at: datetime) -> date:
    """The day an organiser picked: the inverse of end_of_day()."""
    return (closes_at.astimezone(LOCAL_TIME) - timedelta(microseconds=1)).date()


def days_left(closes_at: datetime, now: datetime) -> int:
    """Signing days left, today included: 1 on the closing day itself (UK calendar days)."""
    return (closing_day(closes_at) - now.astimezone(LOCAL_TIME).date()).days + 1


def uk_time(moment: datetime) -> str:
    """'26 November 2026 at 15:40 GMT' (or BST): a time as people in the UK read it."""
    local = moment.astimezone(LOCAL_TIME)
    return f"{local.day} {local:%B %Y at %H:%M} {local.tzname()}"
