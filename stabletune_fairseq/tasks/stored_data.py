"""What every task of the plugin shares: it reads a folder that ``process.sh`` wrote (``metadata.json``, one
``dict.txt``) and records that folder's identity in every checkpoint, where loading and resuming compare it."""

from fairseq.tasks import FairseqTask

from ..reliability.run_identity import KEY as IDENTITY_KEY, data_identity


class StoredDataTask(FairseqTask):
    """Subclasses set ``self.dictionary`` and ``self.metadata`` (the folder's ``metadata.json``) in ``__init__``."""

    _identity = None

    @property
    def identity(self) -> dict:
        """What this run trains on: stored in every checkpoint, compared wherever one is read."""
        if self._identity is None:
            self._identity = data_identity(self.cfg.data, self.metadata)
        return self._identity

    def get_checkpoint_dict(self) -> dict:
        """Merged by fairseq into the ``extra_state`` of every checkpoint it writes."""
        return {IDENTITY_KEY: self.identity}

    def max_positions(self):
        return self.metadata["max_positions"]

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
