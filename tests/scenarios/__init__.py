"""Issue 12's scenario suite: real broken states on this machine, healed (or escalated) by the real daemon."""
