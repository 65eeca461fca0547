"""The background worker: applies repeat signings, queues news for its signers, delivers the
outbox, folds count events, purges expired signatures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from flask import Flask

from petition import db
from petition.mailer import backend_from_config
from petition.services import counts, mail, news, signatures

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 300.0
# While confirmations keep coming, count events are folded this often, between batches of mail
# too: each confirmation sums the unfolded ones, and on PostgreSQL folding every 0.5 s rather
# than every pass (2 s) let confirmations go about a sixth faster (bench/README.md).
FOLD_EVERY_SECONDS = 0.5
# On PostgreSQL each confirmation's sum of unfolded events walks past every folded one not yet
# vacuumed (its plan is a bitmap scan, which never skips them): reclaiming after every 1,000
# rather than 20,000 cut PostgreSQL's CPU per confirmation under load by a quarter to a third.
RECLAIM_AFTER_EVENTS = 1_000


class CountFolder:
    """Folds count events, and reclaims their space after every RECLAIM_AFTER_EVENTS folded.

    Needs an app context (it uses the app's engine and a session of its own per step).
    """

    def __init__(self, reclaim_after: int = RECLAIM_AFTER_EVENTS) -> None:
        self.reclaim_after = reclaim_after
        self.folded = 0
        self.last_folded = 0  # by the latest step: events are still coming in while it is > 0
        self._since_reclaim = 0
        self._stepped_at: float | None = None

    def step(self) -> int:
        """Fold what is pending (one batch); returns how many events were folded."""
        self._stepped_at = time.monotonic()
        with db.transaction() as session:
            folded = counts.fold(session)
        self.folded += folded
        self.last_folded = folded
        self._since_reclaim += folded
        if self._since_reclaim >= self.reclaim_after:
            counts.reclaim_folded(db.engine())
            self._since_reclaim = 0
        return folded

    def step_if_due(self) -> None:
        """Fold if FOLD_EVERY_SECONDS have passed since the last step: between batches of mail,
        so that a long pass of mail does not leave confirmations summing ever more events.
        A failure is logged and left for the pass's own step to retry."""
        if self._stepped_at is not None and (
            time.monotonic() - self._stepped_at < FOLD_EVERY_SECONDS
        ):
            return
        try:
            self.step()
        except Exception as error:  # never let housekeeping stop the mail going out
            log.exception("folding counts failed; will retry%s", db.what_to_do_about(error))


def run_worker(
    app: Flask, stop: threading.Event, *, interval: float = 2.0, once: bool = False
) -> mail.DeliveryReport:
    """Loop until `stop` is set (or one pass with once=True); returns the last pass's report.

    Each pass sends mail for at most `interval` seconds (with once=True, all that is due) before
    it folds counts: during a burst mail is always due, and a pass that waited for the outbox to
    empty folded nothing until the burst was over, while every confirmation summed the growing
    unfolded events. A pass cut short starts the next at once. Counts are also folded between
    batches of mail once FOLD_EVERY_SECONDS have passed, and while the last fold found events
    the next pass comes after FOLD_EVERY_SECONDS rather than `interval`.
    """
    last_purge: float | None = None  # None: due on the first pass, however young the clock
    total = mail.DeliveryReport()
    folder = CountFolder()
    with app.app_context():
        while True:
            try:
                with db.transaction() as session:
                    signatures.apply_repeats(session)
            except Exception as error:  # keep the worker alive through a database restart
                log.exception("repeat signings failed; will retry%s", db.what_to_do_about(error))
            news_left = _queue_news(None if once else time.monotonic() + interval / 2)
            mail_until = None if once else time.monotonic() + interval
            total, more_due = _deliver_due(app, stop, mail_until, folder.step_if_due)
            more_due = more_due or news_left
            if total.problems:
                _log_failed_sends(total)
            try:
                folder.step()
                if last_purge is None or time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    with db.transaction() as session:
                        purged = signatures.purge_expired(session)
                        kept_for = timedelta(days=app.config["PARKED_MAIL_DAYS"])
                        parked = mail.purge_parked(session, db.utcnow() - kept_for)
                    if purged:
                        log.info("purged %s expired pending signatures", purged)
                    if parked:
                        log.info("deleted %s parked messages older than %s", parked, kept_for)
                    last_purge = time.monotonic()
            except Exception as error:  # keep the worker alive through a database restart
                log.exception("housekeeping failed; will retry%s", db.what_to_do_about(error))
            finally:
                db.get_session().close()
            pause = min(interval, FOLD_EVERY_SECONDS) if folder.last_folded else interval
            if once or stop.wait(0 if more_due else pause):
                return total


def _queue_news(until: float | None) -> bool:
    """Queue news emails a batch at a time (a transaction each) until all are queued or the
    monotonic clock passes `until`; whether some may be left for the next pass."""
    try:
        while True:
            with db.transaction() as session:
                if news.fan_out(session) is None:
                    return False
            if until is not None and time.monotonic() >= until:
                return True
    except Exception as error:  # keep the worker alive through a database restart
        log.exception("queuing news failed; will retry%s", db.what_to_do_about(error))
        return False


def _log_failed_sends(report: mail.DeliveryReport) -> None:
    """One line a pass while mail is failing: operators learn of an outage from the log, not
    from signers who never got their link. Each message is tried again later (`mail status`)."""
    why = "; ".join(f"{count} × {problem}" for problem, count in report.problems.most_common())
    log.warning(
        "mail not sent: %s (sent %s, will retry %s, parked %s)",
        why,
        report.sent,
        report.retrying,
        report.parked,
    )


def _deliver_due(
    app: Flask,
    stop: threading.Event,
    until: float | None = None,
    between_batches: Callable[[], None] | None = None,
) -> tuple[mail.DeliveryReport, bool]:
    """Deliver batches until nothing more is due, a batch makes no progress, we must stop, or
    the monotonic clock passes `until`, calling `between_batches` after each full batch; the
    report, and whether mail may still be due."""
    total = mail.DeliveryReport()
    while not stop.is_set():
        try:
            report = mail.deliver_pending(
                db.new_session,
                backend_from_config(app.config),
                app.config["MAIL_FROM"],
                max_attempts=app.config["MAIL_MAX_ATTEMPTS"],
                lease=timedelta(seconds=app.config["MAIL_LEASE_SECONDS"]),
                first_retry=timedelta(seconds=app.config["MAIL_RETRY_SECONDS"]),
                stop=stop,
            )
        except Exception as error:
            log.exception("mail delivery failed; will retry%s", db.what_to_do_about(error))
            # Its kind only: a driver's message may quote what was being written.
            total.errors.append(f"delivery stopped: {type(error).__name__}")
            return total, False
        total.add(report)
        if report.sent == 0 or report.attempted < mail.BATCH_SIZE:
            return total, False
        if until is not None and time.monotonic() >= until:
            return total, True
        if between_batches is not None:
            between_batches()
    return total, False
