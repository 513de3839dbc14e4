#!/usr/bin/env python3
"""Sum meson's test logs into the line CI reads: 'N passed, N failed'.

OK and EXPECTEDFAIL pass, SKIP is skipped, everything else failed. Exits 1
when anything failed or a log is missing (a build that ran no test).
"""
import json
import os
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    log = os.path.join(build, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"{log}: missing", file=sys.stderr)
        failed += 1
        continue
    with open(log) as f:
        for line in f:
            if not line.strip():
                continue
            result = json.loads(line)["result"]
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
