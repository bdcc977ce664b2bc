"""Preferences between samples of the same prompt: single choices and rankings (stored as their implied pairs),
reading them back, and the export query (``preference_pairs``, paged by preference id).

Two samples are "of the same prompt" when their runs share the prompt row, i.e. the same prompt text, whatever
the model or settings, so a Compare tab can pit two models against each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from itertools import combinations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, aliased

from app.labelled_data import PreferencePair
from app.store.checks import check_annotator_name
from app.store.convert import preference_record
from app.store.errors import NotFound, StoreError
from app.store.export_pages import paged
from app.store.models import Annotator, Preference, Prompt, Run, Sample, to_utc
from app.store.records import PreferenceRecord
from app.store.sessions import Repository
from app.store.shared_rows import annotator_id


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


def _add_pairs(
    session: Session, pairs: Iterable[tuple[int, int]], annotator: str, reason: str, rank_group: str | None = None
) -> list[Preference]:
    """Add one row per (chosen, rejected) pair of samples of one prompt, by ``annotator``; return the rows."""
    pairs = list(pairs)
    ids = list(dict.fromkeys(sample_id for pair in pairs for sample_id in pair))
    prompt = _check_same_prompt(_prompt_ids(session, ids), ids)
    # what every pair of one call shares: the prompt, who preferred, why, and the ranking it came from
    shared = {"prompt_id": prompt, "annotator_id": annotator_id(session, annotator), "reason": reason}
    rows = [
        Preference(chosen_sample_id=chosen, rejected_sample_id=rejected, rank_group=rank_group, **shared)
        for chosen, rejected in pairs
    ]
    session.add_all(rows)
    return rows


def _preference_id(pair: PreferencePair) -> int:
    """The id a page of pairs continues after (every pair this module returns has one)."""
    assert pair.preference_id is not None
    return pair.preference_id


class Preferences(Repository):
    """Choices and rankings between samples of one prompt, by people."""

    def add_preference(self, chosen_sample_id: int, rejected_sample_id: int, annotator: str, reason: str = "") -> int:
        """Record that ``annotator`` prefers one sample over another of the same prompt; return the row id."""
        if chosen_sample_id == rejected_sample_id:
            raise StoreError(f"sample {chosen_sample_id} cannot be preferred over itself; pick two different samples")
        check_annotator_name(annotator)
        with self.sessions.write() as session:
            (row,) = _add_pairs(session, [(chosen_sample_id, rejected_sample_id)], annotator, reason)
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
        with self.sessions.write() as session:
            _add_pairs(session, combinations(ids, 2), annotator, reason, rank_group=group)
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
        with self.sessions.read() as session:
            rows = session.execute(
                select(Preference, Annotator.name)
                .join(Annotator, Annotator.id == Preference.annotator_id)
                .where(*where)
                .order_by(Preference.id)
            ).tuples()
            return [preference_record(pref, name) for pref, name in rows]

    @paged(_preference_id)
    def preference_pairs(
        self,
        *,
        annotator: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[PreferencePair]:
        """Every recorded preference, oldest first. ``model`` matches either side; a pair across two models
        reports ``model`` as ``"<chosen model> vs <rejected model>"``. ``after``/``limit``: only the preferences
        after id ``after`` (``preference_id``), at most ``limit`` of them; ``limit=None`` reads every page."""
        since = to_utc(since) if since is not None else None
        chosen, rejected = aliased(Sample), aliased(Sample)
        chosen_run, rejected_run = aliased(Run), aliased(Run)
        stmt = (
            select(Preference, Prompt.text, Annotator.name, chosen, rejected, chosen_run.model, rejected_run.model)
            .join(Prompt, Prompt.id == Preference.prompt_id)
            .join(Annotator, Annotator.id == Preference.annotator_id)
            .join(chosen, chosen.id == Preference.chosen_sample_id)
            .join(rejected, rejected.id == Preference.rejected_sample_id)
            .join(chosen_run, chosen_run.id == chosen.run_id)
            .join(rejected_run, rejected_run.id == rejected.run_id)
            .where(Preference.id > after)
            .order_by(Preference.id)
            .limit(limit)
        )
        if annotator is not None:
            stmt = stmt.where(Annotator.name == annotator.strip())
        if model is not None:
            stmt = stmt.where(or_(chosen_run.model == model, rejected_run.model == model))
        if since is not None:
            stmt = stmt.where(Preference.created_at >= since)
        with self.sessions.read() as session:
            return [
                PreferencePair(
                    prompt=prompt,
                    chosen_thinking=good.thinking,
                    chosen_answer=good.answer,
                    rejected_thinking=bad.thinking,
                    rejected_answer=bad.answer,
                    annotator=name,
                    model=good_model if good_model == bad_model else f"{good_model} vs {bad_model}",
                    reason=pref.reason,
                    created_at=pref.created_at,
                    chosen_run_id=good.run_id,
                    rejected_run_id=bad.run_id,
                    preference_id=pref.id,
                )
                for pref, prompt, name, good, bad, good_model, bad_model in session.execute(stmt).tuples()
            ]
