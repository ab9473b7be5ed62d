"""Remediations, registered by name. Importing this package registers them all."""

from healer.actions import command as command
from healer.actions.base import REGISTRY, Action, ActionContext, VerifyResult, get_action, register

__all__ = ["REGISTRY", "Action", "ActionContext", "VerifyResult", "get_action", "register"]
