"""Where the tool keeps its files, and the optional configuration file.

Every location comes from, in order: a command-line flag, an environment
variable, the configuration file (for defaults such as allowed_signers), and
the platformdirs location for this user. The config is TOML, read with the
bounded reader and written with tomli-w.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import CONFIG_FILE, load_toml_file
from enigm_recover.private import make_private_dir, refuse_if_others_can_write
from enigm_recover.errors import ConfigError
from enigm_recover.paths import display_text

APP = "enigm-recover"
ENV_CONFIG = "ENIGM_RECOVER_CONFIG"
ENV_STATE = "ENIGM_RECOVER_STATE_DIR"
ENV_CACHE = "ENIGM_RECOVER_CACHE_DIR"

# Settings the config file may hold: name -> (environment variable, description).
SETTINGS: dict[str, tuple[str, str]] = {
    "source": ("ENIGM_RECOVER_SOURCE", "default snapshot SOURCE (folder or URL)"),
    "target": ("ENIGM_RECOVER_TARGET", "default target store URL"),
    "allowed_signers": ("ENIGM_RECOVER_ALLOWED_SIGNERS", "OpenSSH allowed_signers file trusted for snapshots"),
    "recipient": ("ENIGM_RECOVER_RECIPIENT", "recovery.pub of the configured recovery key"),
    "ssh_config": ("ENIGM_RECOVER_SSH_CONFIG", "OpenSSH client config for SFTP sources (default ~/.ssh/config)"),
    "known_hosts": ("ENIGM_RECOVER_KNOWN_HOSTS", "known_hosts file (default: from the ssh config, ~/.ssh/known_hosts)"),
    "ssh_kex": ("ENIGM_RECOVER_SSH_KEX",
                "SSH key exchange for SFTP sources: prefer-post-quantum (the default: mlkem768x25519-sha256 first, "
                "classic when the server offers nothing better) or post-quantum-only (a server offering only "
                "classic key exchange is refused)"),
    "target_environment": ("ENIGM_RECOVER_TARGET_ENVIRONMENT",
                           "the environment of the default target (e.g. prod): restoring a snapshot of another "
                           "environment into it is refused"),
    "ceremony_dir": ("ENIGM_RECOVER_CEREMONY_DIR", "where ceremonies open their socket for custodians joining from "
                     "their own sessions (default /run/enigm-recover/ceremonies)"),
    "custodian_group": ("ENIGM_RECOVER_CUSTODIAN_GROUP", "the OS group whose members may join a ceremony "
                        "(default enigm-custodians)"),
}

# The values of the ssh_kex setting (and --ssh-kex).
SSH_KEX_PREFER = "prefer-post-quantum"
SSH_KEX_ONLY = "post-quantum-only"
SSH_KEX_MODES = (SSH_KEX_PREFER, SSH_KEX_ONLY)


@dataclass(frozen=True)
class Locations:
    config_file: Path
    state_dir: Path
    cache_dir: Path


def locations(config: str | None = None, state_dir: str | None = None, cache_dir: str | None = None) -> Locations:
    return Locations(
        config_file=Path(config or os.environ.get(ENV_CONFIG) or
                         Path(platformdirs.user_config_dir(APP)) / "config.toml"),
        state_dir=Path(state_dir or os.environ.get(ENV_STATE) or platformdirs.user_state_dir(APP)),
        cache_dir=Path(cache_dir or os.environ.get(ENV_CACHE) or platformdirs.user_cache_dir(APP)),
    )


def load_config(path: Path) -> dict[str, Any]:
    """The config file's settings; an absent file is an empty config. One that other users can write is
    refused (they could point allowed_signers at their own key)."""
    doc = load_toml_file(path, CONFIG_FILE, "config file", ConfigError, missing_ok=True)
    if doc is None:
        return {}
    refuse_if_others_can_write(path, "config file")
    for key, value in doc.items():
        if key == RETENTION:
            _check_retention(path, value)
            continue
        if key not in SETTINGS:
            raise ConfigError(f"config file {path} has unknown setting {key!r}",
                              f"known settings: {', '.join(SETTINGS)}")
        if not isinstance(value, str):
            raise ConfigError(f"config file {path}: setting {key!r} must be a string")
    return doc


RETENTION = "retention"
# The [retention] table: the default policy of `snapshots prune` and `readiness`.
RETENTION_RULES: dict[str, type] = {"keep_last": int, "keep_daily": int, "keep_weekly": int, "keep_monthly": int,
                                    "keep_within": str}


def _check_retention(path: Path, table: Any) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [retention] must be a table",
                          "e.g. [retention] keep_daily = 7, keep_monthly = 12, keep_within = \"30d\"")
    for rule, value in table.items():
        if rule not in RETENTION_RULES:
            raise ConfigError(f"config file {path} has unknown retention rule {rule!r}",
                              f"known rules: {', '.join(RETENTION_RULES)}")
        want = RETENTION_RULES[rule]
        if want is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"config file {path}: [retention] {rule} must be a whole number of at least 1")
        if want is str and not isinstance(value, str):
            raise ConfigError(f"config file {path}: [retention] {rule} must be a duration such as \"30d\"")


def retention_rules(config: dict[str, Any]) -> dict[str, Any]:
    """The config file's [retention] rules (checked when the file was loaded); empty when absent."""
    return dict(config.get(RETENTION) or {})


def save_setting(path: Path, key: str, value: str | None) -> None:
    if key not in SETTINGS:
        raise ConfigError(f"unknown setting {key!r}", f"known settings: {', '.join(SETTINGS)}")
    if value is not None and display_text(value) != value:
        raise ConfigError(f"the value for {key} ({display_text(value)}) is not UTF-8 text, and the configuration "
                          "file holds only text",
                          f"give it on the command line or in {SETTINGS[key][0]} instead, or rename it in UTF-8")
    if key == "ssh_kex" and value is not None:
        require_post_quantum_kex(value)  # an unknown mode is refused now, not at the next connection
    doc: dict[str, Any] = load_config(path)
    if value is None:
        doc.pop(key, None)
    else:
        doc[key] = value
    make_private_dir(path.parent, "config folder", check=False)
    write_atomic(path, tomli_w.dumps(doc).encode(), mode=0o600, overwrite=True)


def setting(flag_value: str | None, key: str, config: dict[str, Any]) -> str | None:
    """A setting's effective value: flag, then environment, then config file."""
    return flag_value or os.environ.get(SETTINGS[key][0]) or config.get(key)


def target_environment(target_flag: str | None, environment_flag: str | None, config: dict[str, str]) -> str | None:
    """The environment of the target a command uses. A flag names it for any target; otherwise it comes from
    where the target came from (environment variables, or the config file), so a target given on the command
    line is never checked against the environment configured for another one."""
    if environment_flag:
        return environment_flag
    if target_flag:
        return None
    if os.environ.get(SETTINGS["target"][0]):
        return os.environ.get(SETTINGS["target_environment"][0]) or None
    return config.get("target_environment") or None


def require_post_quantum_kex(value: str | None) -> bool:
    """The ssh_kex setting's effective value (flag, environment or config file) as a yes/no; unknown values are
    refused with the ones allowed."""
    if value in (None, "", SSH_KEX_PREFER):
        return False
    if value == SSH_KEX_ONLY:
        return True
    raise ConfigError(f"the ssh_kex setting is {display_text(str(value))!r}",
                      f"use {SSH_KEX_PREFER} or {SSH_KEX_ONLY} (in {SETTINGS['ssh_kex'][0]}, the config file or --ssh-kex)")
