#!/usr/bin/env python3
"""A PostToolUse audit hook for Write and Edit, as a Claude Code user writes it.

Appends one JSON line per file written to $CLAUDE_PROJECT_DIR/.claude/audit.log.
"""

import json
import os
import sys
from datetime import UTC, datetime

data = json.load(sys.stdin)
path = data.get("tool_input", {}).get("file_path")
if path:
    log = os.path.join(os.environ["CLAUDE_PROJECT_DIR"], ".claude", "audit.log")
    with open(log, "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "at": datetime.now(UTC).isoformat(),
                    "session": data.get("session_id"),
                    "tool": data.get("tool_name"),
                    "file": path,
                }
            )
            + "\n"
        )
sys.exit(0)
