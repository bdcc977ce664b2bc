"""``Store``: the one object the services hold to persist and query runs, steps, labels and preferences.

It is built by ``db.open_store(url)`` and passed in, never imported as a global. The store is one repository
per aggregate, each in its own module, all over one :class:`~app.store.sessions.Sessions`:

======================  ==================  =======================================================================
attribute               module              what it owns
======================  ==================  =======================================================================
``store.runs``          ``runs.py``         saving runs (whole, or live while they run), History, loading, deleting
``store.samples``       ``samples.py``      one sample, its steps, merging and splitting steps
``store.sweeps``        ``sweeps.py``       sweeps and their runs
``store.probes``        ``probes.py``       hint-faithfulness probes and their runs
``store.branches``      ``branches.py``     which trace a run continues (lineage)
``store.labels``        ``labels.py``       annotators, step labels, verdicts, and their export queries
``store.queue``         ``label_queue.py``  the labelling queue and its progress count
``store.agreement``     ``agreement_        counts of rating pairs and disagreeing steps (inter-annotator
                        queries.py``        agreement, counted in the database)
``store.auto_labels``   ``auto_labels.py``  machine step labels and their export query
``store.choices``       ``preferences.py``  preferences and rankings between samples, and their export query
======================  ==================  =======================================================================

(``store.choices``, not ``store.preferences``: that name is the method that lists preferences.)

The services call the store's flat methods (``store.save_run(...)``, ``store.add_label(...)``): each is the
repository method of the same name, bound in :meth:`Store.__init__` (so its signature and docstring are the
repository's). Every method opens its own short session and returns plain records (``records.py``) or domain
dataclasses, never ORM rows.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from typing_extensions import Self

from app.store.agreement_queries import AgreementQueries
from app.store.auto_labels import AutoLabels
from app.store.branches import Branches
from app.store.label_queue import LabelQueue
from app.store.labels import Labels
from app.store.preferences import Preferences
from app.store.probes import Probes
from app.store.runs import Runs
from app.store.samples import Samples
from app.store.sessions import Sessions
from app.store.sweeps import Sweeps


class Store:
    """Persistence for tracelab: the repositories of the module docstring and their methods, bound flat."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = Sessions(engine)
        self.url = self.sessions.url
        self.check_writable = self.sessions.check_writable
        self.close = self.sessions.close
        self._bind_runs(Runs(self.sessions), Samples(self.sessions), Sweeps(self.sessions), Probes(self.sessions))
        self._bind_labels(Labels(self.sessions), LabelQueue(self.sessions), AutoLabels(self.sessions))
        self._bind_preferences_and_branches(Preferences(self.sessions), Branches(self.sessions))
        self.agreement = AgreementQueries(self.sessions)
        self.rating_pair_counts = self.agreement.rating_pair_counts
        self.disagreeing_steps = self.agreement.disagreeing_steps

    def _bind_runs(self, runs: Runs, samples: Samples, sweeps: Sweeps, probes: Probes) -> None:
        self.runs, self.samples, self.sweeps, self.probes = runs, samples, sweeps, probes
        self.save_run = runs.save_run
        self.begin_run = runs.begin_run
        self.checkpoint_run = runs.checkpoint_run
        self.finish_run = runs.finish_run
        self.interrupt_running_runs = runs.interrupt_running_runs
        self.list_runs = runs.list_runs
        self.get_run = runs.get_run
        self.delete_run = runs.delete_run
        self.run_owner = runs.run_owner
        self.list_models = runs.list_models
        self.count_runs = runs.count_runs
        self.get_sample = samples.get_sample
        self.steps_for_sample = samples.steps_for_sample
        self.merge_steps = samples.merge_steps
        self.split_step = samples.split_step
        self.create_sweep = sweeps.create_sweep
        self.sweep_runs = sweeps.sweep_runs
        self.list_sweeps = sweeps.list_sweeps
        self.create_probe = probes.create_probe
        self.link_probe_run = probes.link_probe_run
        self.get_probe = probes.get_probe
        self.probe_runs = probes.probe_runs
        self.list_probes = probes.list_probes

    def _bind_labels(self, labels: Labels, queue: LabelQueue, auto_labels: AutoLabels) -> None:
        self.labels, self.queue, self.auto_labels = labels, queue, auto_labels
        self.ensure_annotator = labels.ensure_annotator
        self.list_annotators = labels.list_annotators
        self.add_label = labels.add_label
        self.current_labels = labels.current_labels
        self.label_history = labels.label_history
        self.step_ratings_by_annotator = labels.step_ratings_by_annotator
        self.set_verdict = labels.set_verdict
        self.current_verdict = labels.current_verdict
        self.labelled_samples = labels.labelled_samples
        self.verdict_samples = labels.verdict_samples
        self.label_queue = queue.label_queue
        self.label_progress = queue.label_progress
        self.add_auto_labels = auto_labels.add_auto_labels
        self.current_auto_labels = auto_labels.current_auto_labels
        self.auto_hard_labels = auto_labels.auto_hard_labels
        self.auto_labelled_samples = auto_labels.auto_labelled_samples

    def _bind_preferences_and_branches(self, choices: Preferences, branches: Branches) -> None:
        self.choices, self.branches = choices, branches
        self.add_preference = choices.add_preference
        self.add_ranking = choices.add_ranking
        self.preferences = choices.preferences
        self.preference_pairs = choices.preference_pairs
        self.branch_of = branches.branch_of
        self.branches_of = branches.branches_of
        self.lineage = branches.lineage

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
