import pytest
from transformers import AutoTokenizer, DataCollatorForLanguageModeling

from qrepro.data.splits import split_stats, synthetic_raw, tokenize_packed, tokenize_padded, tokenize_splits
from qrepro.data.tokenizer import finish, train_bpe


@pytest.fixture(scope="module")
def raw():
    return synthetic_raw(seed=5, scale=0.01, pretrain_rows=600, people=12, cities=4)


@pytest.fixture(scope="module")
def tokenizer(raw, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    train_bpe(list(raw["train"]["text"]) + list(raw["pretrain"]["text"]), vocab_size=300).save_pretrained(folder)
    return finish(AutoTokenizer.from_pretrained(folder))


def test_trained_tokenizer_reloads_as_fast_tokenizer_with_paper_settings(tokenizer, raw):
    assert tokenizer.is_fast and len(tokenizer) == 300
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>" and tokenizer.padding_side == "right"
    line = raw["train"]["text"][3] or raw["train"]["text"][1]
    ids = tokenizer(line)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == line


def test_paper_protocol_pads_every_non_empty_row(tokenizer, raw):
    padded = tokenize_padded(raw["test"], tokenizer, max_length=48)
    non_empty = sum(1 for t in raw["test"]["text"] if t.strip())
    assert padded.num_rows == non_empty < raw["test"].num_rows
    assert all(len(ids) == 48 for ids in padded["input_ids"])
    # padding is eos on the right; the collator masks it (and any eos) out of the labels
    batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)([padded[i] for i in range(4)])
    pad = batch["input_ids"] == tokenizer.eos_token_id
    assert pad.any() and (batch["labels"][pad] == -100).all() and (batch["labels"][~pad] != -100).all()


def test_packing_concatenates_into_full_blocks(tokenizer, raw):
    packed = tokenize_packed(raw["train"], tokenizer, max_length=32)
    assert all(len(ids) == 32 and all(m == 1 for m in mask)
               for ids, mask in zip(packed["input_ids"], packed["attention_mask"]))
    all_tokens = sum(len(tokenizer(t)["input_ids"]) for t in raw["train"]["text"] if t.strip())
    assert packed.num_rows == all_tokens // 32


def test_split_stats_count_rows_as_the_paper(tokenizer, raw):
    stats = split_stats(raw, tokenize_splits(raw, tokenizer, 48, packing=False), tokenizer, 48, packing=False)
    assert stats["train"]["rows"] == raw["train"].num_rows
    assert stats["train"]["non_empty_rows"] == stats["train"]["samples"]
    assert 0 < stats["train"]["tokens"] < stats["train"]["tokens_with_padding"] == 48 * stats["train"]["samples"]


@pytest.mark.parametrize("packing", [False, True])
def test_split_stats_count_what_max_length_cuts(tokenizer, raw, packing):
    """Rows longer than max_length and the tokens the samples leave out, against the rows' own lengths."""
    max_length = 16
    stats = split_stats(raw, tokenize_splits(raw, tokenizer, max_length, packing), tokenizer, max_length, packing)
    lengths = [len(tokenizer(t)["input_ids"]) for t in raw["train"]["text"] if t.strip()]
    assert stats["train"]["untruncated_tokens"] == sum(lengths)
    if packing:
        assert stats["train"]["truncated_rows"] == 0
        # run_clm's group_texts packs each map batch of 1000 rows on its own and drops that batch's remainder
        remainders = sum(sum(lengths[i:i + 1000]) % max_length for i in range(0, len(lengths), 1000))
        assert stats["train"]["untruncated_tokens"] - stats["train"]["tokens"] == remainders
    else:
        assert stats["train"]["truncated_rows"] == sum(n > max_length for n in lengths) > 0
        assert stats["train"]["untruncated_tokens"] - stats["train"]["tokens"] == sum(max(0, n - max_length) for n in lengths)
