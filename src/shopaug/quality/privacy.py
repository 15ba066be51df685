"""Privacy: personal data in generated text, and synthetic users that copy real ones.

The PII scan looks for e-mail addresses, phone numbers (international, North American
and Chinese mobile), payment card numbers (13-19 digits that pass the Luhn check) and
street addresses in every piece of generated text. Distance to closest record (DCR)
compares each synthetic user's item set with its nearest real user's (Jaccard
distance) next to the same distance between real users, so "close" has a baseline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from shopaug.data.bundle import ShopData
from shopaug.quality._common import (
    Section,
    binned,
    by_origin,
    fmt_int,
    generated_attributes,
    generated_profiles,
    make_check,
    positive_rows,
    rng_for,
    synthetic_users,
)

SECTION = "privacy"
#: users compared per side (each against every real user)
DCR_SAMPLE = 2_000
DCR_EDGES = [0.0, 1e-9, *[round(0.1 * i, 1) for i in range(1, 10)]]
DCR_LABELS = ["0 (copy)", "0-0.1", *[f"{0.1 * i:.1f}-{0.1 * (i + 1):.1f}" for i in range(1, 10)]]

_STREET = ("street|st|road|rd|avenue|ave|boulevard|blvd|lane|ln|drive|dr|way|court|ct|"
           "place|pl|terrace|highway|hwy")
_UNITS = ("(?:gb|tb|mb|kb|mah|mm|cm|m|in|inch|inches|ft|oz|lb|lbs|ml|l|w|v|pack|pk|pcs|pc|"
          "piece|pieces|count|ct|set|sets)")
_NOT_STORAGE = "".join(f"(?<!{word} )" for word in (
    "hard", "flash", "disk", "disc", "thumb", "usb", "pen", "optical", "state", "dvd", "cd",
    "blu-ray", "tape", "zip", "jump", "external"))
PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "card": re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
    "phone": re.compile(
        r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\d)"  # +44 20 7946 0958
        r"|(?<!\d)\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\d)"  # (555) 123-4567
        # Chinese mobile; not glued to Latin letters or "_" ("shift3_16430620042" is
        # a product code), but Chinese text may touch it ("手机13812345678")
        r"|(?<![A-Za-z0-9_])1[3-9]\d{9}(?![A-Za-z0-9_])"),
    # a number, one to three name words, a street word, then the end, a comma, a number
    # or a unit: "221 Baker Street, London" but not "2 pack road bike". Not a decimal or
    # a quantity ("usb 3.0 ...", "500 gb ..."), nor a storage drive: "<brand> 500 gb
    # portable hard drive" failed a search bench's privacy check
    "address": re.compile(
        rf"(?<![\d.,])\b\d{{1,5}}\s+(?!{_UNITS}\b)(?:[^\W\d_][\w'.-]*\s+){{1,3}}"
        rf"{_NOT_STORAGE}(?:{_STREET})\b\.?"
        r"(?=\s*(?:$|[,;\n]|\d|apt\b|suite\b|unit\b|#))"
        r"|[\u4e00-\u9fff]{1,12}(?:路|街|大道|巷|弄)\s*\d+\s*号", re.IGNORECASE),
}
TAGS = {"email": "[EMAIL]", "card": "[CARD]", "phone": "[PHONE]", "address": "[ADDRESS]"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    # issuers start with 2-6 (Mastercard, Amex, Visa, Discover, UnionPay ...)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every PII match; a card number is not also a phone number."""
    found: list[tuple[str, int, int]] = []
    taken = np.zeros(len(text) + 1, dtype=bool)
    for kind in ("email", "card", "phone", "address"):
        for m in PATTERNS[kind].finditer(text):
            if taken[m.start():m.end()].any() or (kind == "card" and not _is_card(m.group())):
                continue
            if kind == "phone" and not 8 <= len(re.sub(r"\D", "", m.group())) <= 15:
                continue
            found.append((kind, m.start(), m.end()))
            taken[m.start():m.end()] = True
    return sorted(found, key=lambda f: f[1])


def redact(text: str, found: list[tuple[str, int, int]], width: int = 100) -> str:
    out, pos = [], 0
    for kind, start, end in found:
        out += [text[pos:start], TAGS[kind]]
        pos = end
    out.append(text[pos:])
    clean = re.sub(r"\s+", " ", "".join(out)).strip()
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def generated_texts(data: ShopData) -> Iterable[tuple[str, str, str]]:
    """(where, row id, text) of every generated text in the bundle."""
    _, queries = by_origin(data.queries)
    for qid, text in zip(queries["query_id"], queries["text"], strict=True):
        if isinstance(text, str):
            yield "queries.text", str(qid), text
    profiles = generated_profiles(data.users)
    for uid, text in zip(profiles["user_id"], profiles["text"], strict=True):
        yield "users.profile_text", uid, text
    attrs = generated_attributes(data.items)
    for iid, name, value in zip(attrs["item_id"], attrs["attribute"], attrs["value"],
                                strict=True):
        yield f"items.attributes.{name}", iid, value


def pii_scan(data: ShopData, thresholds: Any, section: Section) -> None:
    counts = dict.fromkeys(PATTERNS, 0)
    texts_with = dict.fromkeys(PATTERNS, 0)
    examples: list[list[str]] = []
    scanned = 0
    for where, rid, text in generated_texts(data):
        scanned += 1
        found = find_pii(text)
        if not found:
            continue
        kinds = {k for k, _, _ in found}
        for kind, _, _ in found:
            counts[kind] += 1
        for kind in kinds:
            texts_with[kind] += 1
        if len(examples) < 5:
            examples.append([where, rid, ", ".join(sorted(kinds)), redact(text, found)])
    section.table("PII in generated text", ["kind", "matches", "texts"],
                  [[k, counts[k], texts_with[k]] for k in PATTERNS],
                  f"{scanned:,} generated texts scanned (synthetic queries, generated user "
                  "profiles, generated attribute values); cards must pass the Luhn check")
    if examples:
        section.table("PII examples (redacted)", ["where", "row", "kinds", "text"], examples)
    names = {"email": "pii_emails", "phone": "pii_phones", "card": "pii_cards",
             "address": "pii_addresses"}
    for kind, name in names.items():
        section.add(make_check(SECTION, name, counts[kind], thresholds,
                               f"{counts[kind]:,} {kind} matches in {fmt_int(scanned)} "
                               "generated texts"))


# -- distance to closest record ------------------------------------------------------------
def _user_matrix(frame: pd.DataFrame, users: list[str], items: pd.Index) -> sparse.csr_matrix:
    rows = pd.Categorical(frame["user_id"].astype(str), categories=users).codes
    cols = items.get_indexer(frame["item_id"].astype(str))
    keep = (rows >= 0) & (cols >= 0)
    m = sparse.csr_matrix((np.ones(keep.sum(), dtype=np.float32), (rows[keep], cols[keep])),
                          shape=(len(users), len(items)))
    m.data[:] = 1.0  # duplicate rows summed: back to a set
    return m


def nearest_jaccard_distance(a: sparse.csr_matrix, b: sparse.csr_matrix,
                             self_index: np.ndarray | None = None, block: int = 256
                             ) -> np.ndarray:
    """Per row of ``a``: Jaccard distance to its nearest row of ``b`` (sparse products in
    blocks, so memory follows the overlaps, not |a| x |b|). ``self_index[i]`` is a row of
    ``b`` that row i must not be compared with (itself)."""
    size_a = np.asarray(a.sum(axis=1)).ravel()
    size_b = np.asarray(b.sum(axis=1)).ravel()
    best = np.zeros(a.shape[0])
    bt = b.T.tocsc()
    for start in range(0, a.shape[0], block):
        inter = (a[start:start + block] @ bt).tocsr()
        rows = np.repeat(np.arange(inter.shape[0]), np.diff(inter.indptr))
        union = size_a[start + rows] + size_b[inter.indices] - inter.data
        sim = np.where(union > 0, inter.data / np.maximum(union, 1e-12), 0.0)
        if self_index is not None:
            sim[inter.indices == self_index[start + rows]] = -1.0
        top = np.zeros(inter.shape[0])
        np.maximum.at(top, rows, sim)
        best[start:start + inter.shape[0]] = top
    return 1.0 - best


def dcr(data: ShopData, thresholds: Any, section: Section, seed: int) -> None:
    inter = positive_rows(data.interactions)
    made = synthetic_users(inter)
    real, synthetic = by_origin(inter)
    # "{user}~{op}{n}" pseudo-users are views of a real user's own history (sequence
    # augmentation): they copy their source by design and stay inside training
    real_ids = set(real["user_id"].astype(str))
    views = {u for u in made if "~" in u and u.split("~", 1)[0] in real_ids}
    made = made - views
    if views:
        section.note("Views of real users", f"{len(views):,} pseudo-users are views of a real "
                     "user's own history (id 'user~op', sequence augmentation); they are "
                     "not compared with real users")
    synthetic = synthetic[synthetic["user_id"].astype(str).isin(made)]
    if synthetic.empty or real.empty:
        section.note("Distance to closest real user", "no synthetic users (users found only in "
                     "synthetic interactions)" if synthetic.empty else "no real interactions")
        return
    rng = rng_for(seed, "privacy.dcr")
    items = pd.Index(sorted(set(real["item_id"].astype(str)) | set(
        synthetic["item_id"].astype(str))))
    real_users = sorted(set(real["user_id"].astype(str)))
    syn_users = sorted(made & set(synthetic["user_id"].astype(str)))
    picked_syn = sorted(rng.choice(syn_users, min(DCR_SAMPLE, len(syn_users)), replace=False))
    picked_real = np.sort(rng.choice(len(real_users), min(DCR_SAMPLE, len(real_users)),
                                     replace=False))
    r = _user_matrix(real, real_users, items)
    s = _user_matrix(synthetic, list(picked_syn), items)
    d_syn = nearest_jaccard_distance(s, r)
    d_real = (nearest_jaccard_distance(r[picked_real], r, self_index=picked_real)
              if len(real_users) > 1 else np.array([]))
    copies = float((d_syn == 0).mean())
    real_copies = float((d_real == 0).mean()) if len(d_real) else None
    rows = [["users", len(syn_users), len(real_users)],
            ["users measured", len(picked_syn), len(d_real)],
            ["median DCR (Jaccard distance of item sets)", float(np.median(d_syn)),
             float(np.median(d_real)) if len(d_real) else None],
            ["share with DCR = 0 (exact copy of another user)", copies, real_copies]]
    section.table("Distance to closest real user (DCR)", ["metric", "synthetic users",
                                                          "real users (to nearest other)"],
                  rows, "synthetic users = users found only in synthetic interactions; a "
                        "real user's nearest record is another real user")
    section.plot("Distance to closest real user", "hist", "Jaccard distance", DCR_LABELS,
                 {"real": binned(d_real, DCR_EDGES), "synthetic": binned(d_syn, DCR_EDGES)}
                 if len(d_real) else {"synthetic": binned(d_syn, DCR_EDGES)})
    baseline = f"; real users: {real_copies:.1%}" if real_copies is not None else ""
    section.add(make_check(
        SECTION, "synthetic_user_exact_copy_share", copies, thresholds,
        f"{copies:.1%} of {len(picked_syn):,} synthetic users have exactly the item set of a "
        f"real user{baseline}"))


def privacy_section(data: ShopData, *, thresholds: Any, seed: int = 0) -> Section:
    section = Section()
    pii_scan(data, thresholds, section)
    dcr(data, thresholds, section, seed)
    return section
