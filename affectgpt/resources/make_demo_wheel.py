"""Write the small demo emotion wheel (our own words, the official schema) to resources/demo_wheel/.

Used only by the embedded demo when no official emotion_wheel/ folder is found; every score made
with it is labelled "wheel: demo (not comparable with published scores)". It covers the synthetic
dataset's emotions and the MER-UniBench label words; "neutral" is deliberately absent (unmappable,
as with the official files). Run: python -m affectgpt.resources.make_demo_wheel
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "demo_wheel"

# level1 -> level2 -> level3 words (the base wheel; the five wheels are variations of it).
BASE: dict[str, dict[str, list[str]]] = {
    "happy": {
        "joyful": ["cheerful", "delighted"],
        "excited": ["eager", "enthusiastic"],
        "content": ["pleased", "satisfied"],
    },
    "peaceful": {"calm": ["relaxed", "serene"], "hopeful": ["optimistic", "trusting"]},
    "sad": {
        "lonely": ["isolated", "abandoned"],
        "depressed": ["hopeless", "miserable"],
        "hurt": ["disappointed", "grieving"],
    },
    "angry": {"annoyed": ["irritated", "frustrated"], "furious": ["enraged", "hostile"]},
    "scared": {"worried": ["anxious", "nervous"], "frightened": ["terrified", "panicked"]},
    "surprised": {"amazed": ["astonished", "awestruck"], "confused": ["puzzled", "bewildered"]},
    "disgusted": {"disapproving": ["contemptuous", "judgmental"], "repelled": ["revolted", "nauseated"]},
}


def _variant(move: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """The base wheel with whole L1 branches folded into one L2 group of another L1."""
    wheel = {l1: {l2: list(l3) for l2, l3 in children.items()} for l1, children in BASE.items()}
    for source, target in move.items():
        wheel[target][source] = [word for l2, leaves in wheel.pop(source).items() for word in [l2, *leaves]]
    return wheel


WHEELS = {
    1: _variant({}),
    2: _variant({"peaceful": "happy"}),  # calm counts as a happy feeling
    3: _variant({"disgusted": "angry"}),  # no disgust branch (like official W3/W5)
    4: _variant({"surprised": "scared"}),
    5: _variant({"peaceful": "happy", "disgusted": "angry"}),
}

# wheel word -> synonyms (each synonym maps back to the word, as in the official synonym.xlsx).
SYNONYMS: dict[str, list[str]] = {
    "happy": ["happiness", "joy", "glad"],
    "joyful": ["joyous", "elated"],
    "cheerful": ["upbeat"],
    "delighted": ["thrilled"],
    "excited": ["excitement", "exhilarated"],
    "eager": ["keen"],
    "enthusiastic": ["passionate"],
    "content": ["contented"],
    "pleased": ["gratified"],
    "satisfied": ["fulfilled"],
    "peaceful": ["peace"],
    "calm": ["tranquil", "composed"],
    "relaxed": ["at ease"],
    "serene": ["placid"],
    "hopeful": ["hope"],
    "optimistic": ["positive"],
    "trusting": ["trust"],
    "sad": ["sadness", "unhappy", "sorrowful"],
    "lonely": ["loneliness", "alone"],
    "isolated": ["secluded"],
    "abandoned": ["deserted"],
    "depressed": ["gloomy", "down"],
    "hopeless": ["despairing"],
    "miserable": ["wretched"],
    "hurt": ["wounded"],
    "disappointed": ["disappointment", "let down"],
    "grieving": ["grief", "mourning"],
    "angry": ["anger", "mad", "rage"],
    "annoyed": ["annoyance", "irked", "bothered"],
    "irritated": ["irritation"],
    "frustrated": ["frustration"],
    "furious": ["fury", "livid"],
    "enraged": ["incensed"],
    "hostile": ["hostility"],
    "scared": ["fear", "afraid", "fearful"],
    "worried": ["worry", "concerned", "uneasy"],
    "anxious": ["anxiety"],
    "nervous": ["nervousness", "tense"],
    "frightened": ["fright"],
    "terrified": ["terror"],
    "panicked": ["panic"],
    "surprised": ["surprise", "shocked", "startled"],
    "amazed": ["amazement"],
    "astonished": ["astonishment"],
    "awestruck": ["awe"],
    "confused": ["confusion", "perplexed"],
    "puzzled": ["baffled"],
    "bewildered": ["dazed"],
    "disgusted": ["disgust", "revulsion", "repulsed"],
    "disapproving": ["disapproval"],
    "contemptuous": ["contempt", "scornful"],
    "judgmental": ["critical"],
    "repelled": ["repelling"],
    "revolted": ["sickened"],
    "nauseated": ["nauseous"],
}
# extra word forms per name (format.csv); every name also lists itself.
FORMS: dict[str, list[str]] = {
    "happy": ["happier", "happiest", "happily"],
    "happiness": ["happinesses"],
    "joy": ["joys", "joyfulness"],
    "sad": ["sadder", "saddest", "sadly"],
    "angry": ["angrier", "angriest", "angrily"],
    "anger": ["angers", "angered"],
    "scared": ["scare", "scary"],
    "fear": ["fears", "feared", "fearing"],
    "worried": ["worries", "worrying"],
    "worry": ["worries", "worrying"],
    "surprised": ["surprising", "surprisingly"],
    "surprise": ["surprises"],
    "disgusted": ["disgusting"],
    "disgust": ["disgusts"],
    "annoyed": ["annoying", "annoys"],
    "lonely": ["lonelier", "loneliest"],
    "excited": ["exciting", "excitedly"],
    "calm": ["calmer", "calmly", "calmness"],
    "anxious": ["anxiously"],
    "nervous": ["nervously"],
    "frustrated": ["frustrating"],
    "confused": ["confusing"],
}


def write_demo_wheel(out: Path = OUT) -> Path:
    """Write wheel1-5.xlsx, synonym.xlsx and format.csv in the official schema."""
    out.mkdir(parents=True, exist_ok=True)
    for number, wheel in WHEELS.items():
        rows = []
        for l1, children in wheel.items():
            for i, (l2, leaves) in enumerate(children.items()):
                for j, l3 in enumerate(leaves):
                    # blank cells repeat the value above (the official merged-cell style)
                    rows.append({"level1": l1 if i == j == 0 else None, "level2": l2 if j == 0 else None, "level3": l3})
        pd.DataFrame(rows).to_excel(out / f"wheel{number}.xlsx", sheet_name="Sheet1", index=False)
    synonyms = pd.DataFrame({"word_run1": list(SYNONYMS), "synonym_run1": [", ".join(s) for s in SYNONYMS.values()]})
    synonyms.to_excel(out / "synonym.xlsx", sheet_name="Sheet1", index=False)
    names = sorted(set(SYNONYMS) | {s for values in SYNONYMS.values() for s in values})
    formats = pd.DataFrame({"name": names, "format": [",".join([n] + FORMS.get(n, [])) for n in names]})
    formats.to_csv(out / "format.csv", index=False)
    return out


if __name__ == "__main__":
    print(f"wrote {write_demo_wheel()}")
