"""autoif_lib: the helper package behind the AutoIF / SPaR workbench notebooks.

Import submodules directly (``from autoif_lib import config``); this package
init stays empty so that importing the sandbox or the config never drags in
torch or transformers.
"""

__version__ = "0.1.0"
