"""``make demo``: the datacenter story, end to end, then staged attacks (docs/demo.md).

The story runs on the embedded default (SQLite) in one process, with the product's real
services on loopback ports: a vendor releases and logs firmware and a PFM
(:mod:`ironroot.transparency`, a witness and a monitor follow the log), an OCP SAFE lab
reviews it, a fleet is manufactured, booted, attested and admitted over HTTPS
(:mod:`ironroot.fleet`), a BMC update rolls out under a two-person rule, a confidential VM
gets its key from an HSM (:mod:`ironroot.keyrelease`) and an auditor verifies a node offline
(:mod:`ironroot.audit`). Then each staged attack is attempted through the product path and
must be refused with its exact typed error; the table shows what stopped each one. An attack
that is not refused makes the demo exit 1.

Layout: :mod:`~ironroot.demo._world` (the shared state), :mod:`~ironroot.demo._acts` (the
acts, :data:`ACTS`: the place to add one), :mod:`~ironroot.demo._attacks` (:data:`ATTACKS`),
:mod:`~ironroot.demo._report` (``--json``), :mod:`~ironroot.demo._serve` (``--serve``),
:mod:`~ironroot.demo._ui` (the console).
"""

from ironroot.demo._acts import ACTS, Act
from ironroot.demo._attacks import ATTACKS, Attack, AttackResult, run_attack
from ironroot.demo._main import main, run_story
from ironroot.demo._report import REPORT_FORMAT, REPORT_SCHEMA, build_report
from ironroot.demo._ui import Narrator
from ironroot.demo._world import Story

__all__ = [
    "ACTS",
    "ATTACKS",
    "REPORT_FORMAT",
    "REPORT_SCHEMA",
    "Act",
    "Attack",
    "AttackResult",
    "Narrator",
    "Story",
    "build_report",
    "main",
    "run_attack",
    "run_story",
]
