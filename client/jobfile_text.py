"""Job-file keys users write as short text that the parser turns into messages:
`retry_on = ["timeout", "exit_code:75"]` becomes a RetryFailures.

The text stays what users write; the contract carries the message. Problems are located like
every other key's (the checks are a mixin of jobfile's converter).
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from jobplane.client.locate import FieldPath
from jobplane.v1 import job_pb2

_EXIT_CODE = re.compile(r"exit_code:(-?\d{1,10})")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class TextKeys:
    """Converters of the keys above. The converter they are mixed into provides `strings` and
    `_fail` (raise a located problem)."""

    def retry_on(self, value: Any, path: FieldPath) -> job_pb2.RetryFailures:
        """"error" (any failure), "timeout" or "exit_code:N", any number of them."""
        failures = job_pb2.RetryFailures()
        for index, word in enumerate(self.strings(value, path)):
            exit_code = _EXIT_CODE.fullmatch(word.strip())
            if word.strip() == "error":
                failures.any = True
            elif word.strip() == "timeout":
                failures.timeout = True
            elif exit_code and INT32_MIN <= int(exit_code.group(1)) <= INT32_MAX:
                failures.exit_codes.append(int(exit_code.group(1)))
            else:
                self._fail(path + (index,), f"unknown {word!r}; use error (any failure), timeout or exit_code:N")
        return failures

    # Provided by the converter this is mixed into (jobfile._Converter).

    def strings(self, value: Any, path: FieldPath) -> list[str]:
        raise NotImplementedError

    def _fail(self, path: FieldPath, message: str) -> NoReturn:
        raise NotImplementedError
