"""The page `dvc plots show` fills in, with Vega, Vega-Lite and vega-embed inside it.

DVC's own page loads those three libraries from a CDN, so offline it draws no
curve. `.dvc/config` points `plots.html_template` at ``TEMPLATE``, which holds
them inline: it is committed, so viewing the plots needs neither the network
nor any Python package. It is this module's output from the libraries that the
pinned vl-convert-python ships (a test keeps the two equal); after changing
that pin, write it again with ``python -m mnistpipe.plots_page``.
"""

import importlib.metadata
from pathlib import Path

from mnistpipe.files import atomic_open

TEMPLATE = Path("plots/page_template.html")

# DVC fills {plot_divs} with the plots and {refresh_tag} for `--watch`-style
# reloading. The page has no {scripts}: that is where DVC puts the CDN tags.
_PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and vega-embed (BSD-3-Clause, https://vega.github.io),
         as bundled by vl-convert-python {version}. -->
    <script>
(function () {{
{bundle}
}})();
    </script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def page_template(bundle: str, version: str) -> str:
    """The template around ``bundle``, the JavaScript that defines vega, vegaLite and vegaEmbed."""
    # An inline script ends at the first "</script", wherever it is; DVC replaces
    # its placeholders anywhere in the page, the bundle included. The bundle runs
    # in a function of its own, so that its top-level names cannot clash with
    # those of the scripts DVC writes for each plot; it exports through window.
    for forbidden in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        if forbidden in bundle.lower():
            raise ValueError(f"the Vega bundle holds {forbidden!r}; it cannot be inlined as is")
    return _PAGE.format(bundle=bundle.strip(), version=version)


def main() -> None:
    import vl_convert

    with atomic_open(TEMPLATE) as stream:
        stream.write(
            page_template(
                vl_convert.javascript_bundle(), importlib.metadata.version("vl-convert-python")
            )
        )
    # A page to read, like any file of the repository (temporary files are private).
    TEMPLATE.chmod(0o644)
    print(f"wrote {TEMPLATE}")


if __name__ == "__main__":
    main()
