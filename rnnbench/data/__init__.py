"""Data: the registry and loaders of the data sets, the validation split and training subsets, the
tokenizer and ragged token storage.

Layout: :mod:`.corpus` (what a loader returns), :mod:`.files` (opening and reading publishers' files),
:mod:`.loaders`, :mod:`.blog` and :mod:`.generic` (the per-format loaders; :mod:`.sources`: which files a
generic data set reads, and what each file really is), :mod:`.synthetic` (the built-in
corpus), :mod:`.groups` (rows that stay on one side of a split),
:mod:`.registry` (the data sets, local copies, :func:`load`), :mod:`.download` (``rnnbench data
download``; not imported here: it needs the network stack), :mod:`.subsets`, :mod:`.tokenizer`,
:mod:`.ragged`.
"""

from .corpus import Corpus, Kind, LoadReport, Split, Task
from .ragged import Ragged
from .registry import REGISTRY, DatasetInfo, Source, data_home, get_info, load, register, resolve_path
from .subsets import Subsets, make_subsets, stratified_order, subset_indices
from .synthetic import generate, rule_label, rule_score
from .tokenizer import PAD, UNK, Tokenizer

__all__ = [
    "PAD", "REGISTRY", "UNK", "Corpus", "DatasetInfo", "Kind", "LoadReport", "Ragged", "Source", "Split",
    "Subsets", "Task", "Tokenizer", "data_home", "generate", "get_info", "load", "make_subsets", "register",
    "resolve_path", "rule_label", "rule_score", "stratified_order", "subset_indices",
]
