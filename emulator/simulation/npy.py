"""One lock for parsing NPY headers, which NumPy does with `ast.literal_eval`.

CPython 3.11's AST constructor is not safe to use from several threads at once: concurrent
`ast.literal_eval` calls fail with "SystemError: AST constructor recursion depth mismatch"
(seen when submissions validate in parallel request threads). Only the header parse (and the
array copy after it) runs under the lock; the rest of validation stays parallel.
"""

from __future__ import annotations

import threading

NPY_LOCK = threading.Lock()
