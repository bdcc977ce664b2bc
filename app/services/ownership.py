"""Who may do what to a run: a run belongs to the login that started it; only that person or an admin
(``--admins``) may delete it, and deleting hides it without destroying anyone's labels (``Store.delete_run``).

Without ``--auth`` everybody is ``local`` (see :data:`app.services.runs.LOCAL_USER`), so on a single-user
machine every run is yours. Runs saved before owners were recorded (``created_by`` NULL) count as ``local``'s.
"""

from __future__ import annotations

from app.errors import InvalidInput
from app.services import history
from app.services.runs import LOCAL_USER
from app.services.runtime import Runtime


class NotAllowed(InvalidInput):
    """The user may not do this to the run; the message says who may."""


def user_name(username: str | None) -> str:
    """The login, or ``local`` when nobody logged in."""
    return username.strip() if username and username.strip() else LOCAL_USER


def may_delete(rt: Runtime, user: str, owner: str | None) -> bool:
    return user in rt.settings.admin_names() or user == (owner or LOCAL_USER)


def delete_run(rt: Runtime, run_id: int, user: str) -> None:
    """Delete (hide) run ``run_id`` for ``user``; ``NotAllowed`` if it is someone else's and they're no admin,
    ``NotFound`` if there is no such run."""
    owner = rt.db.run_owner(run_id)
    if not may_delete(rt, user, owner):
        raise NotAllowed(
            f"Run #{run_id} was started by {owner or LOCAL_USER}; only they or an admin (--admins) may delete it."
        )
    history.delete_run(rt.db, run_id, by=user)
