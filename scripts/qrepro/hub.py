"""Clear errors for when the Hugging Face hub cannot be reached, and what was loaded from its cache."""
from __future__ import annotations

import os
import re
from pathlib import Path

COMMIT = re.compile(r"[0-9a-f]{40}")  # a full git commit hash (hub revisions, dataset revisions)


class HubUnavailableError(RuntimeError):
    pass


def hub_error(what: str, local_option: str, cause: BaseException | None = None) -> HubUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = ("HF_HUB_OFFLINE=1 is set, so nothing is downloaded" if offline
           else "the hub could not be reached and it is not in the local cache")
    said = " ".join(str(cause).split())  # one line: the runlog wrapper prints the message after "failed, see <log>:"
    detail = f" (the loader said: {type(cause).__name__}: {said})" if cause is not None else ""
    return HubUnavailableError(
        f"Could not load {what} from the Hugging Face hub: {why}{detail}. "
        f"Either run where the hub is reachable (unset HF_HUB_OFFLINE), pre-download it into the cache, "
        f"or point the config at files on disk ({local_option}).")


def snapshot_commit(repo_id: str, revision: str | None, filenames: tuple[str, ...]) -> str:
    """The commit of the hub-cache snapshot that `revision` (None = main) of a model repo resolves to, read
    from the local cache only (<HF_HUB_CACHE>/models--org--name/snapshots/<commit>/<file>): the snapshot
    transformers loaded the files from. Raises if none of `filenames` is cached for that revision."""
    from huggingface_hub import constants, try_to_load_from_cache

    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(cached, str):
            commit = Path(cached).parent.name
            if COMMIT.fullmatch(commit):
                return commit
    raise HubUnavailableError(
        f"{repo_id} at revision {revision or 'main'} has none of {', '.join(filenames)} in the hub cache "
        f"({constants.HF_HUB_CACHE}), so the commit it was loaded from "
        "is unknown; load it once with hub access")
