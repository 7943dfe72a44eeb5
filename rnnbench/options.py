"""The building blocks of config sections: a field with its one-line meaning and its bounds.

Every section dataclass, the core ones in :mod:`rnnbench.config` and each model kind's own (in its
package under :mod:`rnnbench.models`), declares its options with :func:`opt`, so that one validator
(:func:`rnnbench.config.from_dict`) and one generated reference (``docs/config.md``) serve them all.
"""

from __future__ import annotations

from dataclasses import field


def opt(default=None, doc: str = "", **checks):
    """A dataclass field with its one-line meaning (``doc``, for the config reference) and validation
    metadata: ``min``, ``max``, ``min_len``, ``max_len``, ``unique`` (a list holds each value once)."""
    meta = {"doc": doc, **checks}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls, doc: str):
    """A field holding a whole section (a dataclass of options), with its meaning."""
    return field(default_factory=cls, metadata={"doc": doc})
