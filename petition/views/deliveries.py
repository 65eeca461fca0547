"""What a recipient's office sees: the letter and a download of its signatories."""

from __future__ import annotations

from flask import Blueprint, render_template

from petition.db import get_session, transaction, utcnow
from petition.services import counts, deliveries
from petition.views import csv_response

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")


@bp.get("/<token:token>")
def show(token: str):
    session = get_session()
    delivery, letter = deliveries.find(session, token)
    return render_template(
        "deliveries/show.html",
        letter=letter,
        delivery=delivery,
        token=token,
        count=counts.current(session, letter.id),
        # Whether the list is final: an office may deliver it, or wait for more.
        accepting=letter.accepts_signatures(utcnow()),
    )


@bp.get("/<token:token>/signatories.csv")
def download(token: str):
    with transaction() as session:
        delivery, letter = deliveries.find(session, token)
        deliveries.record_download(session, delivery)
    return csv_response(letter)
