"""AutoIF (arXiv 2406.13542): instructions, verifiers and responses filtered by executing generated code.

One module per stage concern; ``pipeline.py`` declares the stages, ``stages.py`` their params.
"""
