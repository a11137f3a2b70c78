"""The simulator's generic policy: what a role without a script does."""

from __future__ import annotations

from collections.abc import Generator

from ._policies import Call, Observation, Situation, Turn

__all__ = ["generic_policy"]


def generic_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Any role without a script: look at the workspace when it can, then answer the prompt."""
    prompt = situation.prompt.strip() or situation.task.strip()
    first_line = prompt.splitlines()[0] if prompt else "(no prompt)"
    if "list_files" not in situation.tools:
        return f"(offline simulator, role {situation.role}) Received: {first_line}"
    seen = yield Turn(
        "Let me look at the workspace first.", [Call("list_files", {"pattern": "**/*"})]
    )
    files = (
        []
        if seen[0].is_error or seen[0].content == "no files match"
        else seen[0].content.splitlines()
    )
    readme = next((f for f in files if f.lower() in ("readme.md", "readme.txt", "readme")), None)
    summary = ""
    if readme and "read_file" in situation.tools:
        read = yield Turn(f"Reading {readme}.", [Call("read_file", {"path": readme, "limit": 20})])
        if not read[0].is_error:
            heading = next((ln for ln in read[0].content.splitlines() if ln.strip()), "")
            summary = f" {readme} begins: {heading.strip()!r}."
    return (
        f"(offline simulator, role {situation.role}) Task: {first_line}\n"
        f"The workspace has {len(files)} files.{summary} "
        "This role has no scripted behaviour, so no change was made."
    )
