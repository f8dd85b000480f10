"""The xtreme_sentence task: input layout, languages, and batches that cover every example."""

import pytest
from conftest import TOY_DEV_PAIRS

from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


@pytest.fixture(scope="module")
def task(toy_data):
    return XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=1))


def test_pair_layout(task):
    dataset = task.load_dataset("valid_de")
    d = task.dictionary
    tokens = dataset[0]["net_input.src_tokens"].tolist()
    assert tokens[0] == d.bos() and tokens[-1] == d.eos()
    assert [i for i, t in enumerate(tokens) if t == d.eos()][:2] == [tokens.index(d.eos()), tokens.index(d.eos()) + 1]
    assert dataset[0]["lang"] == task.languages.index("de")


def test_valid_gathers_every_language(task):
    dataset = task.load_dataset("valid")
    assert len(dataset) == 5 * TOY_DEV_PAIRS  # the toy's five dev languages
    assert sorted({dataset[i]["lang"] for i in range(0, len(dataset), TOY_DEV_PAIRS)}) == list(range(5))


@pytest.mark.parametrize("multiple", [1, 8])
def test_batches_cover_every_example(task, multiple):
    dataset = task.load_dataset("valid")
    batches = task.get_batch_iterator(
        dataset, max_sentences=16, max_positions=task.max_positions(), required_batch_size_multiple=multiple
    ).next_epoch_itr(shuffle=False)
    ids = [i for batch in batches for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(len(dataset)))


def test_unknown_split_and_language_are_errors(task, toy_data):
    with pytest.raises(FileNotFoundError, match="no split 'valid_xx'"):
        task.load_dataset("valid_xx")
    other = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), valid_languages="de,xx", seed=1))
    with pytest.raises(ValueError, match=r"\['xx'\] have no dev split"):
        other.load_dataset("valid")
