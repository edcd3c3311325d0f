"""savd state: the snapshot store (in memory, versioned) and its SQLite journal (restart without churn).

    speakers, RTR, files, API ──Change──► StateStore ──► StateSnapshot(version N) ──► engine
                                              │
                                              └──► Journal (SQLite in data_dir): inputs, checkpoint,
                                                   rules pushed per peer, last rule set
"""

from appliance.state.changes import Announce, Change, ReplaceSource, Withdraw, WithdrawSource
from appliance.state.errors import StateError, StateErrorKind
from appliance.state.facts import FACT_KINDS, Fact, kind_of
from appliance.state.journal import Journal
from appliance.state.snapshot import StateSnapshot
from appliance.state.store import Applied, StateStore

__all__ = [
    "FACT_KINDS",
    "Announce",
    "Applied",
    "Change",
    "Fact",
    "Journal",
    "ReplaceSource",
    "StateError",
    "StateErrorKind",
    "StateSnapshot",
    "StateStore",
    "Withdraw",
    "WithdrawSource",
    "kind_of",
]
