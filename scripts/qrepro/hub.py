"""Clear errors for when the Hugging Face hub cannot be reached."""
from __future__ import annotations

import os


class HubUnavailableError(RuntimeError):
    pass


def hub_error(what: str, local_option: str) -> HubUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = ("HF_HUB_OFFLINE=1 is set, so nothing is downloaded" if offline
           else "the hub could not be reached and it is not in the local cache")
    return HubUnavailableError(
        f"Could not load {what} from the Hugging Face hub: {why}. "
        f"Either run where the hub is reachable (unset HF_HUB_OFFLINE), pre-download it into the cache, "
        f"or point the config at files on disk ({local_option}).")
