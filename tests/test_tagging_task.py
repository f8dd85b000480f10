"""The tagging task's examples: chunks that cover every word, word-aligned views, the word head's pooling."""

import numpy as np
import pytest
import torch
from conftest import TAGGING_MAX_LEN, read_metadata

from stabletune_fairseq.data.words import word_text
from stabletune_fairseq.models.heads import WordHead
from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask


def make_task(data, **overrides):
    return XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(data), seed=5, **overrides))


def groups_of(tokens, word_of):
    """Pieces of each word of an encoded item, from its per-token word numbers (sum pooling)."""
    words = {}
    for token, word in zip(tokens.tolist(), word_of.tolist()):
        if word >= 0:
            words.setdefault(word, []).append(token)
    return [words[k] for k in sorted(words)]


def test_chunks_cover_every_word_of_every_sentence_once(toy_panx):
    task = make_task(toy_panx)
    dataset = task.load_dataset("valid_de")
    meta = read_metadata(toy_panx)["splits"]["valid_de"]
    covered = {}
    for index in range(len(dataset)):
        item = dataset[index]
        assert len(item["tokens"]) <= TAGGING_MAX_LEN
        for k in range(len(item["target"])):
            key = (item["sentence"], item["first_word"] + k)
            assert key not in covered
            covered[key] = int(item["target"][k])
    assert len(covered) == meta["words"] and len(dataset) > meta["examples"]  # the long sentence was split
    tags = np.load(toy_panx / "tags" / "valid_de.npy")
    assert [covered[k] for k in sorted(covered)] == tags.tolist()


@pytest.mark.parametrize("kind", ["subword_sampling", "code_switch"])
def test_views_are_word_aligned_and_fit(toy_udpos, toy_dicts, kind):
    task = make_task(
        toy_udpos,
        view_augmentation=kind,
        pooling="sum",
        subword_sampling_prob=1.0,
        code_switch_prob=1.0,
        dict_dir=str(toy_dicts),
        dict_langs="de",
    )
    dataset = task.load_dataset("train").dataset  # inside the length-bucketed order
    changed = 0
    for index in range(0, len(dataset), 7):
        item = dataset[index]
        rows, views = groups_of(item["tokens"], item["word_of"]), groups_of(item["view"], item["view_word_of"])
        assert len(rows) == len(views) == len(item["target"])  # one view word per row word
        assert len(item["view"]) <= TAGGING_MAX_LEN
        if kind == "subword_sampling":  # a re-segmented word still spells the same word
            assert [word_text(g, task.dictionary) for g in rows] == [word_text(g, task.dictionary) for g in views]
        changed += sum(r != v for r, v in zip(rows, views))
    assert changed > 0


def test_views_are_reproducible_and_change_with_the_epoch(toy_panx):
    task = make_task(toy_panx, view_augmentation="subword_sampling", subword_sampling_prob=1.0)
    dataset = task.load_dataset("train").dataset
    first = [dataset[i]["view"].tolist() for i in range(20)]
    assert first == [dataset[i]["view"].tolist() for i in range(20)]
    dataset.set_epoch(2)
    assert first != [dataset[i]["view"].tolist() for i in range(20)]


def test_first_piece_pooling_marks_only_first_pieces(toy_panx):
    dataset = make_task(toy_panx).load_dataset("valid_de")
    item = dataset[len(dataset) - 1]
    word_of = item["word_of"].tolist()
    firsts = [i for i, w in enumerate(word_of) if w >= 0]
    assert [word_of[i] for i in firsts] == list(range(len(item["target"])))
    groups = dataset.word_groups(len(dataset) - 1)
    assert firsts == (1 + np.cumsum([0] + [len(g) for g in groups[:-1]])).tolist()


def test_word_head_pools_like_a_hand_computation():
    torch.manual_seed(0)
    head = WordHead(8, 3, dropout=0.0)
    features = torch.randn(2, 6, 8)
    dump = 3  # the batch's widest word count
    word_index = torch.tensor([[dump, 0, 0, 1, 2, dump], [dump, 0, 1, 1, dump, dump]])
    logits = head(features, word_index=word_index)
    assert logits.shape == (2, 3, 3)
    expected = head.out_proj(features[0, 1] + features[0, 2])
    assert torch.allclose(logits[0, 0], expected, atol=1e-6)
    assert torch.allclose(logits[1, 1], head.out_proj(features[1, 2] + features[1, 3]), atol=1e-6)
    assert torch.allclose(logits[1, 2], head.out_proj(torch.zeros(8)), atol=1e-6)  # padding word: nothing pooled


def test_collated_batch_masks_padding_words(toy_panx):
    dataset = make_task(toy_panx).load_dataset("valid_de")
    batch = dataset.collater([dataset[0], dataset[len(dataset) - 1]])
    counts = [len(dataset[0]["target"]), len(dataset[len(dataset) - 1]["target"])]
    assert batch["word_mask"].sum(1).tolist() == counts
    assert batch["head_input"]["word_index"].max() == max(counts)
    assert (batch["target"][~batch["word_mask"]] == -1).all()


def test_translation_views_are_refused_for_tagging(toy_panx):
    with pytest.raises(ValueError, match="word-aligned"):
        make_task(toy_panx, view_augmentation="translation")
