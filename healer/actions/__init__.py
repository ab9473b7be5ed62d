"""Remediations, registered by name. Importing this package registers them all."""

from healer.actions import command as command
from healer.actions import disk_cleanup as disk_cleanup
from healer.actions import git_sync as git_sync
from healer.actions import pip_install as pip_install
from healer.actions import restart as restart
from healer.actions import restore_file as restore_file
from healer.actions import set_config as set_config
from healer.actions.base import REGISTRY, Action, ActionContext, VerifyResult, get_action, register

__all__ = ["REGISTRY", "Action", "ActionContext", "VerifyResult", "get_action", "register"]
