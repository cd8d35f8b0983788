"""Job-file keys users write as short text that the parser turns into messages:
`retry_on = ["timeout", "exit_code:75"]` becomes a RetryFailures, `conditions =
["free_memory_bytes>=512Mi"]` FactConditions, a continuation rule's `kind = "end_of_month"` a
ContinuationRuleKind.

The text stays what users write; the contract carries the message. Problems are located like
every other key's (the checks are a mixin of jobfile's converter).
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from jobplane.client.locate import FieldPath
from jobplane.v1 import job_pb2

_EXIT_CODE = re.compile(r"exit_code:(-?\d{1,10})")
_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]{0,63})\s*(<=|>=|==|!=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*([KMGT]i?)?\s*")
_COMPARISONS = {"<": job_pb2.COMPARISON_LESS, "<=": job_pb2.COMPARISON_LESS_OR_EQUAL, ">": job_pb2.COMPARISON_GREATER,
                ">=": job_pb2.COMPARISON_GREATER_OR_EQUAL, "=": job_pb2.COMPARISON_EQUAL, "==": job_pb2.COMPARISON_EQUAL,
                "!=": job_pb2.COMPARISON_NOT_EQUAL}
RULE_KINDS = {"end_of_month": job_pb2.CONTINUATION_RULE_KIND_END_OF_MONTH,
              "end_of_quarter": job_pb2.CONTINUATION_RULE_KIND_END_OF_QUARTER,
              "end_of_year": job_pb2.CONTINUATION_RULE_KIND_END_OF_YEAR,
              "end_of_period": job_pb2.CONTINUATION_RULE_KIND_END_OF_PERIOD,
              "date": job_pb2.CONTINUATION_RULE_KIND_DATE, "cron": job_pb2.CONTINUATION_RULE_KIND_CRON}
_UNITS = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
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

    def conditions(self, value: Any, path: FieldPath) -> list[job_pb2.FactCondition]:
        """"FACT OP NUMBER", e.g. "load_average<2" or "free_memory_bytes>=512Mi" (K M G T, Ki Mi Gi Ti)."""
        conditions = []
        for index, text in enumerate(self.strings(value, path)):
            found = _CONDITION.fullmatch(text)
            if found is None:
                self._fail(path + (index,), f'{text!r} is not FACT OP NUMBER, e.g. "load_average<2" or '
                                            '"free_memory_bytes>=512Mi" (ops < <= > >= = !=)')
            fact, op, number, unit = found.groups()
            conditions.append(job_pb2.FactCondition(fact=fact, op=_COMPARISONS[op],
                                                    value=float(number) * _UNITS.get(unit or "", 1)))
        return conditions

    def rule_kind(self, value: Any, path: FieldPath) -> int:
        """A continuation rule's kind: end_of_month, end_of_quarter, end_of_year, end_of_period,
        date or cron."""
        word = self.string(value, path).strip()
        if word not in RULE_KINDS:
            self._fail(path, f"unknown kind {word!r}; use one of {', '.join(RULE_KINDS)}")
        return RULE_KINDS[word]

    # Provided by the converter this is mixed into (jobfile._Converter).

    def strings(self, value: Any, path: FieldPath) -> list[str]:
        raise NotImplementedError

    def string(self, value: Any, path: FieldPath) -> str:
        raise NotImplementedError

    def _fail(self, path: FieldPath, message: str) -> NoReturn:
        raise NotImplementedError
