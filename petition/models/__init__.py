"""The persistent entities, one module each."""

from petition.models.count_event import CountEvent
from petition.models.delivery import Delivery
from petition.models.letter import Letter, LetterStatus
from petition.models.message import Message, MessageState
from petition.models.organiser import Organiser
from petition.models.signature import Signature, SignatureState

__all__ = [
    "CountEvent",
    "Delivery",
    "Letter",
    "LetterStatus",
    "Message",
    "MessageState",
    "Organiser",
    "Signature",
    "SignatureState",
]
