"""Import CVAT / VIA / CSV video annotations into an AVA-format dataset (see --help)."""

from __future__ import annotations

from detection.apps.import_annotations import main

if __name__ == "__main__":
    main()
