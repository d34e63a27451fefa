"""The page template `dvc plots show` fills in holds the Vega libraries, not links to a CDN."""

import importlib.metadata
import re

import pytest
import vl_convert

from mnistpipe.plots_page import TEMPLATE, page_template
from tests.conftest import REPOSITORY


def test_the_committed_template_is_the_one_the_pinned_vl_convert_gives():
    committed = (REPOSITORY / TEMPLATE).read_text()
    expected = page_template(
        vl_convert.javascript_bundle(), importlib.metadata.version("vl-convert-python")
    )
    # When this fails after a change of vl-convert-python: python -m mnistpipe.plots_page
    assert committed == expected


def test_the_template_loads_nothing_from_the_network_and_has_dvc_placeholders():
    template = (REPOSITORY / TEMPLATE).read_text()
    assert "{plot_divs}" in template and "{refresh_tag}" in template
    # {scripts} is where DVC would put its CDN <script> tags.
    assert "{scripts}" not in template
    assert re.findall(r"<script[^>]*\bsrc=", template) == []
    assert "window.vegaEmbed=" in template


def test_dvc_reads_the_template_from_the_repository_config():
    config = (REPOSITORY / ".dvc" / "config").read_text()
    assert re.search(r"^\s*html_template = \.\./plots/page_template\.html$", config, re.M)


def test_a_bundle_that_would_end_the_inline_script_is_refused():
    with pytest.raises(ValueError, match="</script"):
        page_template('var page = "</SCRIPT>";', "0")
