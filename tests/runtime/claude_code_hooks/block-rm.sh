#!/bin/bash
# A PreToolUse guard for the Bash tool, as a Claude Code user writes it:
# read the hook input on stdin, look at .tool_input.command, deny `rm -rf`.
COMMAND=$(jq -r '.tool_input.command // empty')

if echo "$COMMAND" | grep -Eq 'rm[[:space:]]+-[a-zA-Z]*r[a-zA-Z]*f|rm[[:space:]]+-[a-zA-Z]*f[a-zA-Z]*r'; then
  jq -n --arg cmd "$COMMAND" '{
    hookSpecificOutput: {
      hookEventName: "PreToolUse",
      permissionDecision: "deny",
      permissionDecisionReason: ("Destructive command blocked by block-rm.sh: " + $cmd)
    }
  }'
  exit 0
fi
exit 0  # no decision: the call goes on
