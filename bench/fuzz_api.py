"""Longer schemathesis runs than the test suite's: every operation of /openapi.json, with auth.

    python bench/fuzz_api.py --url http://127.0.0.1:8080 --key "$(cat memsvc-data/admin.key)" \
        --examples 200

Prints the requests sent, the statuses received, every 5xx and every response that did not
conform to the documented statuses/content types/schemas; exits 1 when there was any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.api.fuzz import fuzz


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", required=True, help="an operator key (tenants and keys too)")
    ap.add_argument("--examples", type=int, default=200, help="examples per operation")
    ap.add_argument("--seed", type=int, default=None, help="fixed seed (default: random)")
    args = ap.parse_args()
    report = fuzz(args.url, args.key, max_examples=args.examples, seed=args.seed)
    print(f"operations: {report.operations}")
    print(f"requests:   {report.requests}")
    print(f"statuses:   {dict(sorted(report.statuses.items()))}")
    print(f"5xx:        {len(report.server_errors)}")
    print(f"failures:   {len(report.failures)}")
    for line in report.server_errors + report.failures:
        print("  " + line)
    return 1 if report.server_errors or report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
