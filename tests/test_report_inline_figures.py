"""The model card's figures embedded for places that show its Markdown without the artifact's files."""

import base64

from ppipe.report.inline_figures import inline_figures

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_relative_png_links_become_data_uris_and_others_stay(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "reliability.png").write_bytes(PNG)
    (tmp_path.parent / "outside.png").write_bytes(PNG)
    md = ("# card\n![Reliability diagram](eval/reliability.png)\n![gone](eval/missing.png)\n"
          "![web](https://example.com/a.png)\n![escape](../outside.png)\n")
    out = inline_figures(md, str(tmp_path))
    encoded = base64.b64encode(PNG).decode()
    assert f"![Reliability diagram](data:image/png;base64,{encoded})" in out
    assert "![gone](eval/missing.png)" in out  # a missing file keeps its link
    assert "![web](https://example.com/a.png)" in out
    assert "![escape](../outside.png)" in out  # nothing outside the artifact's folder is read
    assert out.startswith("# card\n")
