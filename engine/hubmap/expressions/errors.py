"""The two errors an expression can raise: at compile time, and on one record.

Apart from `functions.py` (which re-exports them) so that `budget.py` can raise them too.
"""

from __future__ import annotations


class ExpressionError(Exception):
    """An expression or template failed on one record; `message` says why, in plain words."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class ExpressionSyntaxError(Exception):
    """An expression or template does not compile.

    `offset` is the character (from 0) inside the expression text where the problem is; the caller
    turns it into file:line:column with `Source.location_at(offset)`.  `hint` is a suggestion
    (for example "did you mean 'upper'?"), possibly empty.  `code` is the problem code:
    HM301 JMESPath that does not parse, HM302 a template that does not parse, HM303 an unknown
    function or a wrong number of arguments, HM304 something a template may not do, HM305 a
    template whose cost cannot be bounded (`**`, a `{% set %}` that doubles its own value).
    """

    def __init__(self, message: str, offset: int = 0, hint: str = "", code: str = "HM301"):
        self.message = message
        self.offset = offset
        self.hint = hint
        self.code = code
        super().__init__(message + (f" ({hint})" if hint else ""))
