"""``python -m pyvnc``: the same as the ``pyvnc`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
