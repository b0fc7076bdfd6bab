"""`fulmen up`: the loop of `fulmen demo` as separate processes on a real local Kafka broker,
started, supervised and stopped with one command.

    kafka ─▶ store ─▶ worker ─▶ policy ─▶ scheduler ─▶ agents
    (broker) (fulmen store serve) (fulmen worker) (fulmen serve --follow-versions)
             (fulmen scheduler --executor local: `fulmen train` jobs) (python -m <agent>)

Each service starts once the one before it is ready, writes to `<dir>/logs/<service>.log`,
and is stopped in reverse order (SIGTERM, then SIGKILL) on Ctrl-C, SIGTERM, or when any
of them dies. `_stack.py` says what runs with which settings, `_supervisor.py` how.
"""

from fulmen.up._broker import BrokerService, create_stack_topics
from fulmen.up._process import ProcessService, group_alive, http_probe
from fulmen.up._run import STATE_FILE, run_up
from fulmen.up._service import Service, ServiceFailed, UpError
from fulmen.up._settings import UpSettings
from fulmen.up._stack import Stack, plan_stack
from fulmen.up._supervisor import Interrupted, Supervisor

__all__ = [
    "STATE_FILE",
    "BrokerService",
    "Interrupted",
    "ProcessService",
    "Service",
    "ServiceFailed",
    "Stack",
    "Supervisor",
    "UpError",
    "UpSettings",
    "create_stack_topics",
    "group_alive",
    "http_probe",
    "plan_stack",
    "run_up",
]
