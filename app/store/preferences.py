"""Preferences between samples of the same prompt: single choices and rankings (stored as their implied pairs).

Two samples are "of the same prompt" when their runs share the prompt row, i.e. the same prompt text, whatever
the model or settings, so a Compare tab can pit two models against each other.
"""

from __future__ import annotations

import uuid
from itertools import combinations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from app.store.base import StoreBase, check_annotator_name
from app.store.errors import NotFound, StoreError
from app.store.models import Annotator, Preference, Run, Sample
from app.store.records import PreferenceRecord


def _prompt_ids(session: Session, sample_ids: list[int]) -> dict[int, int]:
    """{sample_id: prompt_id}; ``NotFound`` naming any sample that does not exist."""
    rows = session.execute(
        select(Sample.id, Run.prompt_id).join(Run, Run.id == Sample.run_id).where(Sample.id.in_(sample_ids))
    ).tuples()
    found = {sample_id: prompt_id for sample_id, prompt_id in rows}
    missing = [sid for sid in sample_ids if sid not in found]
    if missing:
        raise NotFound(f"sample(s) {', '.join(map(str, missing))} do not exist (their run may have been deleted)")
    return found


def _check_same_prompt(prompt_of: dict[int, int], sample_ids: list[int]) -> int:
    prompts = {prompt_of[sid] for sid in sample_ids}
    if len(prompts) > 1:
        raise StoreError(
            f"samples {', '.join(map(str, sample_ids))} answer different prompts; "
            "a preference compares answers to the same prompt"
        )
    return prompts.pop()


class PreferencesMixin(StoreBase):
    def add_preference(self, chosen_sample_id: int, rejected_sample_id: int, annotator: str, reason: str = "") -> int:
        """Record that ``annotator`` prefers one sample over another of the same prompt; return the row id."""
        if chosen_sample_id == rejected_sample_id:
            raise StoreError(f"sample {chosen_sample_id} cannot be preferred over itself; pick two different samples")
        check_annotator_name(annotator)
        with self._write() as session:
            pair = [chosen_sample_id, rejected_sample_id]
            prompt_id = _check_same_prompt(_prompt_ids(session, pair), pair)
            row = Preference(
                prompt_id=prompt_id,
                chosen_sample_id=chosen_sample_id,
                rejected_sample_id=rejected_sample_id,
                annotator_id=self._annotator_id(session, annotator),
                reason=reason,
            )
            session.add(row)
            session.flush()
            return row.id

    def add_ranking(self, sample_ids_best_first: list[int], annotator: str, reason: str = "") -> str:
        """Store a ranking of n samples as its n*(n-1)/2 implied pairs; return their shared ``rank_group`` id."""
        ids = list(sample_ids_best_first)
        if len(ids) < 2:
            raise StoreError(f"a ranking needs at least two samples, got {len(ids)}")
        if len(set(ids)) != len(ids):
            raise StoreError(f"ranking {ids} lists a sample twice; rank each sample once")
        check_annotator_name(annotator)
        group = uuid.uuid4().hex
        with self._write() as session:
            prompt_id = _check_same_prompt(_prompt_ids(session, ids), ids)
            annotator_id = self._annotator_id(session, annotator)
            session.add_all(
                Preference(
                    prompt_id=prompt_id,
                    chosen_sample_id=better,
                    rejected_sample_id=worse,
                    annotator_id=annotator_id,
                    reason=reason,
                    rank_group=group,
                )
                for better, worse in combinations(ids, 2)
            )
        return group

    def preferences(
        self, *, annotator: str | None = None, prompt_id: int | None = None, sample_id: int | None = None
    ) -> list[PreferenceRecord]:
        """Recorded preferences, oldest first; ``sample_id`` matches either side of a pair."""
        where: list[ColumnElement[bool]] = []
        if annotator is not None:
            where.append(Annotator.name == annotator.strip())
        if prompt_id is not None:
            where.append(Preference.prompt_id == prompt_id)
        if sample_id is not None:
            where.append(or_(Preference.chosen_sample_id == sample_id, Preference.rejected_sample_id == sample_id))
        with self._read() as session:
            rows = session.execute(
                select(Preference, Annotator.name)
                .join(Annotator, Annotator.id == Preference.annotator_id)
                .where(*where)
                .order_by(Preference.id)
            ).tuples()
            return [
                PreferenceRecord(
                    preference_id=pref.id,
                    prompt_id=pref.prompt_id,
                    chosen_sample_id=pref.chosen_sample_id,
                    rejected_sample_id=pref.rejected_sample_id,
                    annotator=name,
                    reason=pref.reason,
                    rank_group=pref.rank_group,
                    created_at=pref.created_at,
                )
                for pref, name in rows
            ]
