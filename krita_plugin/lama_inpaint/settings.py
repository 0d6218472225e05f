"""The plugin's settings, kept in Krita's own configuration (kritarc, group `lama_inpaint`).

Krita stores every value as a string; reading parses and range-checks each one, so a hand-edited
or outdated kritarc falls back to the default instead of breaking the plugin.
"""
from dataclasses import dataclass, fields
from typing import Any, Dict, Tuple

from .client_api import DEFAULT_ADDRESS

SETTINGS_GROUP = "lama_inpaint"
SOURCES = ("composite", "layer")  # the visible image, or the active layer alone
# Inclusive ranges of the integer settings, shared with the docker's spin boxes.
INT_RANGES: Dict[str, Tuple[int, int]] = {"margin": (0, 2048), "grow": (0, 256), "feather": (0, 256)}
BOOLEANS = ("seamless",)  # stored as "True" / "False"


@dataclass
class InpaintSettings:
    address: str = DEFAULT_ADDRESS   # ZeroMQ address of `lama-backend serve`
    token: str = ""                  # shared secret when the backend was started with --token
    autostart_command: str = ""      # path of `lama-backend` (or a full command line) to start it
    margin: int = 128                # context around the selection bounds sent to the model, px
    grow: int = 0                    # grow the hole by this many px before inpainting
    feather: int = 0                 # blend ramp inside the hole, px
    seamless: bool = True            # shift the fill to meet the pixels around the hole (no seam)
    source: str = "composite"        # "composite" (what you see) or "layer" (active layer only)

    def as_strings(self) -> Dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _parse(name: str, text: str, default: Any) -> Any:
    if name in INT_RANGES:
        low, high = INT_RANGES[name]
        try:
            value = int(text.strip())
        except ValueError:
            return default
        return value if low <= value <= high else default
    if name == "source":
        return text if text in SOURCES else default
    if name in BOOLEANS:
        return {"true": True, "false": False}.get(text.strip().lower(), default)
    if name == "address":
        return text.strip() or default
    return text


def load_settings(app: Any) -> InpaintSettings:
    """Read the settings from Krita (`Krita.instance()`); missing or invalid values get defaults."""
    defaults = InpaintSettings()
    values = {}
    for f in fields(InpaintSettings):
        default = getattr(defaults, f.name)
        text = app.readSetting(SETTINGS_GROUP, f.name, str(default))
        values[f.name] = _parse(f.name, str(text), default)
    return InpaintSettings(**values)


def save_settings(app: Any, settings: InpaintSettings) -> None:
    """Write every setting to Krita's configuration."""
    for name, text in settings.as_strings().items():
        app.writeSetting(SETTINGS_GROUP, name, text)
