"""The child of ``test_fleet_create_race``: ``create_fleet.py FLEET CLASS`` creates the fleet
``FLEET`` with the node class stored in ``CLASS`` (:meth:`NodeClass.save`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ironroot.fleet import Fleet, NodeClass

Fleet.create(Path(sys.argv[1]), node_class=NodeClass.load(Path(sys.argv[2])))
