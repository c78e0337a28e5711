"""Joint search: pruning, distillation, codecs and runtimes searched together under a byte and a latency budget.

    from compress.budget import Budget
    from compress.search import SearchConfig, search
    result = search("runs/mbv1", Budget(max_bytes=225_000, max_latency_ms=2.0), out="search/mbv1")

``compress search RUN --max-bytes N [--max-latency-ms M] --out DIR`` is the same from the command line.
"""

from compress.search.candidates import Candidate
from compress.search.config import SearchConfig, parse_duration
from compress.search.search import SearchBudgetError, SearchResult, search

__all__ = ["search", "SearchConfig", "SearchResult", "SearchBudgetError", "Candidate", "parse_duration"]
