"""A package that is also a function: ``trainwell.tune`` and ``trainwell.diagnose``.

``trainwell.tune(...)`` is the search function (``trainwell/__init__.py`` looks it up on first use), but
``import trainwell.tune.space`` makes Python set the attribute ``trainwell.tune`` to the package
(https://docs.python.org/3/reference/import.html#submodules), hiding the function: ``trainwell.tune(...)``
then failed with "'module' object is not callable" depending on what was imported first. Making the
package callable, forwarding to its function, keeps the public name working in every import order.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable


def make_callable(package: str, function: Callable[..., Any]) -> None:
    """Let the module ``package`` be called like ``function``."""

    class CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[package].__class__ = CallablePackage
