"""What every deploy test shares: the skip-or-fail rule for missing tools
(ctest's SKIP_RETURN_CODE 77 here, a failure under CI=true, where
deploy/setup.sh must have installed everything) and the PASS/FAIL
bookkeeping that ends in one exit status."""
import os
import sys

SKIP = 77


def skip_or_fail(why, ci_note="deploy/setup.sh must have installed it"):
    if os.environ.get("CI") == "true":
        print(f"FAIL: {why} (CI=true: {ci_note})")
        sys.exit(1)
    print(f"SKIP: {why}")
    sys.exit(SKIP)


class Checks:
    """check(name, cond, detail) prints PASS/FAIL and records failures;
    report() prints the summary and returns the exit status."""

    def __init__(self):
        self.failures = []

    def check(self, name, cond, detail=""):
        print(("PASS " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
        if not cond:
            self.failures.append(name)

    def report(self):
        print("FAILED: " + ", ".join(self.failures) if self.failures else "OK")
        return 1 if self.failures else 0
