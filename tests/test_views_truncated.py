"""``views_truncated``: a view that would not fit the model is cut (sentence pairs) or keeps some of its
words as stored (tagging, QA: the length budget refuses their replacement). Every case is counted, per
batch and in the training log. Checked against the same views drawn without a length limit."""

from conftest import preprocess_into
from fairseq.logging import metrics

from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
from stabletune_fairseq.data.augment.views import VIEW_SLOT, view_rng
from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask
from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

VIEWS = {"view_augmentation": "subword_sampling", "subword_sampling_prob": 1.0, "seed": 2}
ITEMS = 48


def spell(dictionary, ids) -> str:
    return "".join(dictionary[int(i)] for i in ids if int(i) >= dictionary.nspecial).replace("\u2581", "")


def batch_and_log_counts(dataset, items) -> tuple[int, float]:
    """The batch's ``views_truncated`` and what the criterion logs for it."""
    count = dataset.collater(items)["views_truncated"]
    with metrics.aggregate(new_root=True) as log:
        StabilityConsistencyCriterion.reduce_metrics([{"views_truncated": count, "sample_size": 1}])
        logged = log.get_smoothed_values().get("views_truncated", 0)
    return count, logged


def refusals(stored: list[list[int]], view: list[int], unlimited: list[list[int]]) -> int:
    """Words of ``view`` left as stored where the view drawn without a limit replaced them. Every word k
    of the view must be either stored word k or unlimited word k (one to one: no word lost or cut)."""

    def parse(k: int, at: int):  # refusals in words k.., or None when the pieces do not parse
        if k == len(stored):
            return 0 if at == len(view) else None
        for word, refused in ((unlimited[k], 0), (stored[k], int(stored[k] != unlimited[k]))):
            if view[at : at + len(word)] == word and (rest := parse(k + 1, at + len(word))) is not None:
                return refused + rest
        return None

    found = parse(0, 0)
    assert found is not None, "the view is not the stored words, each replaced or not"
    return found


def test_sentence_views_cut_to_the_maximum_length_are_counted(toy_xtreme, e5_dir, tmp_path):
    data = preprocess_into(tmp_path, toy_xtreme, "xnli", e5_dir, "MAX_LEN=24")
    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(data), **VIEWS))
    dataset = task.load_dataset("train").dataset
    items = [dataset[i] for i in range(ITEMS)]
    # subword sampling keeps the text: a view spells less than its row exactly when it was cut
    cut = [spell(task.dictionary, item["view"]) != spell(task.dictionary, item["tokens"]) for item in items]
    assert [bool(item["truncated"]) for item in items] == cut
    assert all(len(item["view"]) <= 24 for item in items)
    count, logged = batch_and_log_counts(dataset, items)
    assert count == logged == sum(cut) > 0 and sum(cut) < ITEMS
    print(f"{sum(cut)} of {ITEMS} views cut")


def test_tagging_replacements_refused_by_the_budget_are_counted(toy_tagging_xtreme, e5_dir, tmp_path):
    data = preprocess_into(tmp_path, toy_tagging_xtreme, "panx", e5_dir, "MAX_LEN=8")  # chunks of up to 6 pieces
    task = XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(data), **VIEWS))
    dataset = task.load_dataset("train").dataset
    items, expected = [dataset[i] for i in range(len(dataset))], []
    for index, item in enumerate(items):
        stored = [g.tolist() for g in dataset.word_groups(index)]
        unlimited, _ = dataset.view_augmenter.augment_groups(stored, view_rng(2, dataset.epoch, index, VIEW_SLOT), None)
        expected.append(refusals(stored, item["view"][1:-1].tolist(), unlimited))
        assert len(item["view"]) <= task.max_positions()
    assert [item["refused"] for item in items] == expected
    count, logged = batch_and_log_counts(dataset, items)
    assert count == logged == sum(expected) > 0
    print(f"{sum(expected)} replacements refused in {len(items)} chunks")


def test_qa_replacements_refused_by_the_budget_are_counted(toy_xquad):
    task = XtremeQATask.setup_task(XtremeQAConfig(data=str(toy_xquad), answer_boundaries="augment", **VIEWS))
    dataset = task.load_dataset("train").dataset
    items, expected = [dataset[i] for i in range(ITEMS)], []
    for index, item in enumerate(items):
        number, q, start, length, _ = (int(v) for v in dataset.windows[index])
        question, context = dataset._stored_groups(dataset.parts[number], q, start, length)
        stored = question + context
        unlimited, _ = dataset.view_augmenter.augment_groups(stored, view_rng(2, dataset.epoch, index, VIEW_SLOT), None)
        view = item["view"]
        expected.append(refusals(stored, [i for i in view.tolist() if i >= task.dictionary.nspecial], unlimited))
        assert len(view) <= task.max_positions()
    assert [item["refused"] for item in items] == expected
    count, logged = batch_and_log_counts(dataset, items)
    assert count == logged == sum(expected) > 0
    print(f"{sum(expected)} replacements refused in {ITEMS} windows")
