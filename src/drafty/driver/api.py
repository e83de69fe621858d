"""What a library user implements and catches, re-exported from :mod:`drafty.node.api`.

The definitions live with the node layer (which decides every outcome); the
driver re-exports them so ``from drafty.driver import Refused`` keeps working.
"""

from ..node.api import (
    OutcomeUnknown,
    Refused,
    SessionExpired,
    StateMachine,
    StateMachineError,
)

__all__ = ["OutcomeUnknown", "Refused", "SessionExpired", "StateMachine", "StateMachineError"]
