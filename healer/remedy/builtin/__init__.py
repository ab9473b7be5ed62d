"""Remediations, registered by name. Importing this package registers them all."""

from healer.remedy.base import REGISTRY, Action, ActionContext, VerifyResult, get_action, register
from healer.remedy.builtin import command as command
from healer.remedy.builtin import disk_cleanup as disk_cleanup
from healer.remedy.builtin import git_sync as git_sync
from healer.remedy.builtin import pip_install as pip_install
from healer.remedy.builtin import restart as restart
from healer.remedy.builtin import restore_file as restore_file
from healer.remedy.builtin import set_config as set_config

__all__ = ["REGISTRY", "Action", "ActionContext", "VerifyResult", "get_action", "register"]
