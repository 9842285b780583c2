"""A model card whose figures travel inside its Markdown.

model_card.md links its PNGs relative to the artifact (`eval/reliability.png`), which is right in the artifact's
folder and wrong anywhere else: the Prefect UI shows a flow-run artifact's Markdown without the files beside it, so
the figures came out as their captions only. `inline_figures` turns each such link into a `data:` URI.
"""

from __future__ import annotations

import base64
import os
import re

# ![caption](relative/path.png): only relative PNG links; URLs and absolute paths are left as written
_FIGURE = re.compile(r"!\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:|/)([^)\s]+\.png)\)", re.IGNORECASE)
MAX_FIGURE_BYTES = 2 * 1024 * 1024  # a figure larger than this stays a link (UIs choke on huge documents)


def inline_figures(markdown: str, base_dir: str) -> str:
    """`markdown` with each relative PNG link under `base_dir` replaced by the image itself, base64-encoded; a
    missing, oversized or out-of-folder file keeps its link."""
    root = os.path.realpath(base_dir)

    def embed(match: re.Match) -> str:
        caption, rel = match.group(1), match.group(2)
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep) or not os.path.isfile(path) \
                or os.path.getsize(path) > MAX_FIGURE_BYTES:
            return match.group(0)
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        return f"![{caption}](data:image/png;base64,{data})"

    return _FIGURE.sub(embed, markdown)
