"""The command-line scripts, also installed as console commands (``nca-train``, ...).

Each script is a thin shell (argparse -> settings -> library call -> write) run either as
``python scripts/NAME.py`` or, once the package is installed, as ``nca-NAME``. The package
is installed under the name ``nca_scripts`` (pyproject.toml), so it never shadows another
distribution's top-level ``scripts``.
"""
