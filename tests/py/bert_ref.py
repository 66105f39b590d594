"""A test oracle: the uncased BERT WordPiece tokenizer written in plain Python from the rules in
/work/shared/REFERENCE.md and the behaviour of transformers' slow BertTokenizer (special tokens matched in the
raw text, the rest lower-cased one character at a time, cleaned, CJK spaced, split on Python white space,
NFD with marks Mn dropped, split around punctuation, greedy longest-match WordPiece). Unicode properties come
from Python's unicodedata, not from utf8proc, so the two implementations share no code or tables.
tokcheck.py checks this oracle against the reference's own cases before trusting it."""
import unicodedata

SPECIALS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
MAX_CHARS = 100
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def load_vocab(path):
    vocab = {}
    with open(path, encoding="utf-8", newline="\n") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    return vocab


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_space(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch):
    return any(lo <= ord(ch) <= hi for lo, hi in CJK)


def split_specials(text):
    """[(is_special, str)]: the special tokens found from the left in the raw text, and what lies between."""
    out, i, start = [], 0, 0
    while i < len(text):
        for s in SPECIALS:
            if text.startswith(s, i):
                if start < i:
                    out.append((False, text[start:i]))
                out.append((True, s))
                i += len(s)
                start = i
                break
        else:
            i += 1
    if start < len(text):
        out.append((False, text[start:]))
    return out


def basic(text):
    text = "".join(ch.lower() for ch in text)
    cleaned = []
    for ch in text:
        if ord(ch) in (0, 0xFFFD) or is_control(ch):
            continue
        if is_space(ch):
            cleaned.append(" ")
        elif is_cjk(ch):
            cleaned.append(" " + ch + " ")
        else:
            cleaned.append(ch)
    words = []
    for word in "".join(cleaned).split():
        word = unicodedata.normalize("NFD", word.lower())
        word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
        cur = ""
        for ch in word:
            if is_punct(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab):
    if len(word) > MAX_CHARS:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            sub = ("##" if start else "") + word[start:end]
            if sub in vocab:
                pieces.append(sub)
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        start = end
    return pieces


def tokenize(text, vocab):
    """The pieces of text, [CLS] and [SEP] around them."""
    out = ["[CLS]"]
    for special, part in split_specials(text):
        if special:
            out.append(part)
            continue
        for word in basic(part):
            out.extend(wordpiece(word, vocab))
    return out + ["[SEP]"]


def ids(tokens, vocab):
    return [vocab.get(t, vocab["[UNK]"]) for t in tokens]
