"""The sandbox for generated verification code, in layers.

- ``host``: the API (``Sandbox``, ``SandboxConfig``, ``run_verifiers``) and the host side of the fork servers;
- ``policy``: import allowlist, AST pre-check and its reject reasons, verdict statuses;
- ``guards``: Python-level guards in the child (restricted imports/builtins, audit hook);
- ``kernel``: kernel layers via ctypes (namespaces, Landlock, seccomp, uid drop, rlimits);
- ``server``: the fork server and the per-function child, run as its own interpreter.

``policy``, ``guards`` and ``kernel`` import only the standard library: the server loads them by path.
"""

from .host import Sandbox, SandboxConfig, precheck, run_verifiers

__all__ = ["Sandbox", "SandboxConfig", "precheck", "run_verifiers"]
