#!/bin/bash
# A UserPromptSubmit hook that adds project facts to every prompt, as a Claude Code
# user writes it: the text goes to the model as additionalContext.
BRANCH=$(git -C "$CLAUDE_PROJECT_DIR" rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
jq -n --arg branch "$BRANCH" '{
  hookSpecificOutput: {
    hookEventName: "UserPromptSubmit",
    additionalContext: ("Project facts: the current git branch is " + $branch + "; the tests run with python -m unittest.")
  }
}'
