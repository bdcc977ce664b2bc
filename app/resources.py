"""Files the app ships outside the package (assets/): found in a checkout or in an installed copy.

A checkout or editable install reads ``<repo>/assets``; a regular ``pip install`` puts the same files in
``<prefix>/share/tracelab/assets`` (pyproject's data-files), so both work.
"""

from __future__ import annotations

import sys
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "assets",
    Path(sys.prefix) / "share" / "tracelab" / "assets",
)


def asset_path(name: str) -> Path:
    """The path of asset ``name``; ``FileNotFoundError`` naming where it was looked for."""
    for folder in _CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    places = ", ".join(str(f) for f in _CANDIDATES)
    raise FileNotFoundError(f"asset {name!r} not found in {places}; reinstall tracelab (pip install .)")
